// Package queue is the outbound mail queue of a store instance (the
// reference's SMTPOut and the instance's queue partition): messages that
// accounts send to other domains are written durably to the queue partition
// before the 250, then delivered by MX lookup with retries and backoff; what
// cannot be delivered before the retry period ends goes back to the sender
// as a delivery status notification (RFC 3464). It must not import spec,
// render or remote.
package queue

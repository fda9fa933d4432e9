// Package splice copies the bytes of a logged-in session between the
// client and its home instance, both ways, until either side ends or the
// session has been idle both ways for too long. It must not import spec,
// render or remote.
package splice

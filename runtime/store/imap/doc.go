// Package imap is the IMAP server of a store instance: an imapserver
// (github.com/emersion/go-imap/v2) Session backed by the maildir storage,
// with per-mailbox trackers so that every session sees deliveries, flag
// changes and expunges made elsewhere (IDLE included). It must not import
// spec, render or remote.
package imap

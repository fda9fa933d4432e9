// Package store is the backend mail instance of mailfleet (`mailfleetd
// store`): it wires the maildir storage, the delivery (SMTP/LMTP), IMAP and
// POP3 servers and the account directory into one Instance. The protocol
// servers live in sub-packages; this package owns only their wiring and the
// development mode. It must not import spec, render or remote.
package store

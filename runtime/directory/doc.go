// Package directory is the front-end's LDAP client: it finds the entry of
// an account with the configured filter over a small pool of service
// connections, resolves the entry's home-host attribute (mailHost) to an
// instance of the front-end's instance table, and checks passwords by
// binding as the entry on a fresh connection of its own (a bind changes who
// a connection is, so user binds never touch the service connections).
// Lookups are cached for a short time, found and not found alike, with a
// size cap.
//
// It must not import spec, render or remote, nor any protocol package of
// the front-end: the proxies and the router import it.
package directory

// Package crlf reads the command lines of the text protocols the proxies
// speak, bounded in length so that a client cannot make a session hold
// an unbounded line. It must not import spec, render or remote.
package crlf

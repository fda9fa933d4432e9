// Package storetest runs real store instances (runtime/store) inside a
// test, on 127.0.0.1 with free ports, for the front-end's tests: accounts
// come from LDAP (the same slapd the front-end asks), so one login works on
// both hops. It also makes throwaway TLS certificates. It must not import
// spec, render or remote.
package storetest

// Package slapdtest runs a private OpenLDAP slapd for tests, loaded with
// accounts in the reference's entry shape (account, inetLocalMailRecipient,
// simpleSecurityObject; uid, mailLocalAddress, mailHost, userPassword
// {SSHA}) and listening on ldap://127.0.0.1:PORT/. It must not import
// spec, render or remote.
package slapdtest

// Package auth owns the account directory of a store instance: checking a
// user's password and telling whether an address is a local account. It has
// two back ends: a passwd file (development and small sites; hashed
// passwords only) and LDAP (bind as the account's entry). It must not import
// spec, render, remote or the protocol packages.
package auth

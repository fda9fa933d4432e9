// Package provision creates, changes, checks and moves mail accounts across
// the two places the reference keeps them: the account's LDAP entry
// (password and routing: mailHost) and its home instance (settings and
// mailbox, through the store's admin API).
//
// It sits beside render and remote as a consumer of spec: it reads a
// decoded topology for the directory, the instances' admin endpoints and
// secrets and the provisioning policy, and talks to the live systems. The
// runtime packages do not import spec, so the logic cannot live under
// runtime/.
//
// The order of writes keeps every failure recoverable: an account is
// created domain first, then mailbox, then LDAP entry (never an entry that
// routes to a missing mailbox), and removed LDAP entry first (stop routing),
// then mailbox. Whatever a failure leaves behind, Check reports and Fix
// repairs.
package provision

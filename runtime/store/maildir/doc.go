// Package maildir owns the on-disk mail storage of a store instance:
// maildir++ directories per account under <storage>/<domain>/<local>/,
// message file names (unique key, size, flags), the persistent UID list and
// UIDVALIDITY of each mailbox, mailbox names and their validation, and quota
// accounting.
//
// One process owns a storage partition at a time (the cluster guarantees it),
// so concurrency is handled in memory: one Mailbox object per mailbox, its
// state guarded by a mutex. Durability rules: a delivered message is visible
// only after its file and the new/ directory are fsynced; the UID list is
// replaced by write-temp + fsync + rename + fsync-dir, and a UID is handed out
// only after the list holding it is durable.
//
// It must not import spec, render, remote or any protocol package.
package maildir

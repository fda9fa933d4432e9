// Package remote ships rendered host files over SSH and SFTP: plan the
// difference with each host, apply it atomically, run the actions of the
// changed files. It knows nothing about mail: it takes the host file sets and
// actions that render produced, as its own small input types (Host, File,
// Action) that the command wiring render to remote fills from
// render.Output. It must not import spec, render (whose package holds the
// renderers) or runtime.
//
// Pieces:
//   - remote/sshconn: SSH connections (known_hosts checking, strict or
//     accept-new, agent and key files, jump hosts, one connection per host).
//   - remote/sftp: per-host file reads, atomic writes, removes, commands,
//     a remote sha256sum and the apply lock (flock held by a session).
//   - PlanHost and Format: compare desired files with a host's files and
//     its manifest (ManifestPath), and show the plan.
//   - Engine: Read (connect to every host, read its manifest, pending
//     actions and managed files, which also serve render's Current), Plan
//     (PlanHost plus pending actions and missing Debian packages, with a
//     fingerprint of everything read) and Apply.
//   - SavedPlan: `plan -out` files.
//   - Progress: per-host progress on a terminal, plain lines elsewhere.
//
// An apply goes in phases across all hosts with changes (Parallelism at a
// time):
//
//  1. Each host takes its lock (LockPath, flock -n, held by an SSH session
//     until the apply ends or the connection drops; a second apply fails
//     that host naming the lock) and checks that everything the plan read
//     is unchanged; if any host changed since the plan, nothing is applied
//     anywhere (StaleError).
//  2. Each host installs missing Debian packages (dpkg-query, then apt-get
//     install; a host without dpkg-query is "not a Debian system"), runs its
//     setup commands (one command, set -e; after the packages, since they
//     may use what a package made, such as the openldap user), records the
//     actions to
//     run in PendingPath, writes its changed files (each atomically: temp
//     file in the same directory, fsync, mode and owner, rename), deletes
//     the files no longer rendered and writes its manifest last.
//  3. The actions of the changed files, deduplicated by name, plus those a
//     failed apply left pending, run by Order across hosts: every host's
//     lowest-order actions, a wait for all of them, the next order… Each is
//     bounded by timeout(1) (ActionTimeout) and removed from PendingPath
//     once it succeeded. A host that fails leaves the later phases; the
//     others go on. The next plan shows what is still pending and the next
//     apply runs it, even when no file changed.
//
// Files over LargeFile (the mailfleetd binary) are compared by a sha256sum
// run on the host instead of being downloaded.
//
// Options.Root prefixes every path on a host: tests run many "hosts" on
// one machine with it; real use leaves it nil.
package remote

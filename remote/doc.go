// Package remote ships rendered host files over SSH and SFTP: plan the
// difference with each host, apply it atomically, run the actions of the
// changed files. It knows nothing about mail: it takes the host file sets and
// actions that render produced, as its own small input types (File, Action)
// that the command wiring render to remote fills from render.Output. It must
// not import spec, render (whose package holds the renderers) or runtime.
//
// Built so far:
//   - remote/sshconn: SSH connections (known_hosts checking, strict or
//     accept-new, agent and key files, jump hosts, one connection per host).
//   - remote/sftp: per-host file reads, atomic writes, removes and commands.
//   - PlanHost and Format here: compare desired files with a host's files
//     and its manifest (ManifestPath), and show the plan.
//
// Apply, pending actions, locking, packages and the mailfleetd binary are the
// subject of a later change (issue 6).
package remote

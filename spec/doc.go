// Package spec is mailfleet's topology language: it decodes the HCL files
// of a site (spec/decode), resolves references between its blocks,
// validates the whole (addresses, ports, failover lists, fencing, the
// directory, certificates, secrets) and gives render one typed model,
// Topology, with every default filled in. Its diagnostics carry the
// source range they are about (spec/diagview shows them).
//
// spec is the language and nothing else: it imports nothing of render,
// remote, runtime (but runtime/config's constants, such as the admin
// ports it checks for conflicts), provision, lab or cmd, runs no program
// and opens no connection (internal/deptest holds it to that).
package spec

// Package remote will ship rendered host files over SSH and SFTP: plan the
// difference with each host, apply it atomically, run the actions of the
// changed files. It knows nothing about mail: it takes the host file sets and
// actions that render produced. It must not import spec, render's
// renderers or runtime. (Deploy is the subject of a later issue; this
// package holds nothing yet.)
package remote

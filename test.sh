#!/usr/bin/env bash
# Runs the whole test suite: installs the Debian packages the tests need,
# then go vet, gofmt, staticcheck and go test over every package, with the
# race detector over the packages that run goroutines of their own (the
# daemons, the lab's init, remote, provision and cluster).
# A developer's loop: go test -short ./... (under a minute; see README).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/deps.sh
echo "== go vet"
go vet ./...
echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt: these files need formatting:" >&2
  echo "$unformatted" >&2
  exit 1
fi
echo "== staticcheck"
go tool staticcheck ./...
echo "== go test"
race=$(go list ./runtime/... ./lab/initd/... ./remote/... ./provision/... ./cluster/...)
rest=$(go list ./... | grep -vxF -e "$race")
go test -count=1 -timeout 30m -race $race
go test -count=1 -timeout 30m $rest

#!/usr/bin/env bash
# Runs the whole test suite: installs the Debian packages the tests need,
# then go vet, gofmt and go test over every package.
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
echo "== go test"
go test -count=1 -timeout 30m ./...

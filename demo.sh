#!/usr/bin/env bash
# The main job on this machine: installs what is needed, builds mailfleet,
# validates and renders the reference example, and says where the files went.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/deps.sh
mkdir -p bin
go build -o bin/mailfleet ./cmd/mailfleet
go build -o bin/mailfleetd ./cmd/mailfleetd
echo "== mailfleet validate examples/reference"
bin/mailfleet validate examples/reference
echo "== mailfleet build -o out/reference examples/reference"
bin/mailfleet build -o out/reference examples/reference
bin/mailfleet graph -o out/reference/topology.svg examples/reference
echo
echo "The files of every host are under $(pwd)/out/reference/<node>/<path>;"
echo "out/reference/manifest.json lists them, out/reference/topology.svg draws the site."
echo "Try: bin/mailfleet validate examples/reference-as-written   (the white paper as printed)"

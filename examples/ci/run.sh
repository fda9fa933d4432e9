#!/usr/bin/env bash
# The same checks as github-actions.yml, for any CI: format check, then
# validation with a JSON report. Usage: run.sh TOPOLOGY_DIR
set -euo pipefail
dir=${1:?usage: run.sh TOPOLOGY_DIR}
mailfleet fmt -check -diff "$dir"
mailfleet validate -json "$dir" | tee validate.json

#!/bin/sh
# Benchmarks of the mail store (issue 3): SMTP deliveries per second of 10 KB
# messages with fsync on (1 and 16 concurrent senders), IMAP sessions per
# second (login, select, fetch 10, logout) and FETCH of 1,000 messages.
#
# Usage: runtime/store/bench/run.sh [benchtime]   (default 5s)
#
# The comparison with Dovecot and Postfix that the issue asks for needs
# their Debian packages; the script runs it only when `dovecot` and
# `postfix` are installed, and says so otherwise.
set -eu
cd "$(dirname "$0")/../../.."
benchtime=${1:-5s}
echo "# mailfleet store, $(nproc) CPU, storage on $(df -P "${TMPDIR:-/tmp}" | awk 'NR==2{print $1}'), benchtime $benchtime"
go test -run '^$' -bench . -benchtime "$benchtime" ./runtime/store | grep -E '^(Benchmark|cpu)'
if ! command -v dovecot >/dev/null 2>&1 || ! command -v postfix >/dev/null 2>&1; then
	echo "# dovecot/postfix not installed here: no comparison run (install the Debian packages to get ratios)"
fi

#!/usr/bin/env bash
# Benchmarks of mailfleet's store (issue 3) against Postfix and Dovecot, in
# one run on this machine, with one load generator (bench/store/main.go):
#   - SMTP deliveries per second of 10 KB messages, 1 and 16 concurrent
#     senders: mailfleet (250 after the maildir file and directory are
#     fsynced) vs Postfix (250 after its queue file is fsynced; each run
#     also waits until the messages are in Postfix's maildir, so that its
#     backlog never spills into the next run);
#   - LMTP deliveries of the same messages: mailfleet vs Dovecot's LMTP
#     (both reply once the message is in the maildir, fsync always);
#   - IMAP sessions per second (connect, LOGIN, SELECT, FETCH 1:10 of full
#     10 KB bodies, LOGOUT), 1 and 16 concurrent clients, and FETCH of
#     1,000 messages (headers; full bodies): mailfleet vs Dovecot, with
#     Debian's defaults (a new process per connection) and tuned
#     ("high-performance mode": processes serve many sessions).
# All servers run at once (idle ones take no CPU) and the runs alternate
# between them, round after round, so that whatever else the machine does
# falls on all of them alike; every figure is the median of RUNS timed
# rounds after an untimed warm-up round. All peers run with private configs
# in a temporary directory under BENCH_DIR (default /var/tmp: a disk, not
# tmpfs), listen on 127.0.0.1 only, and are stopped by PID at the end.
# Passwords are {SSHA512} for both IMAP servers, so login figures compare
# the servers, not a hash's cost.
#
# Usage: bench/store/run.sh            (as root: it installs dovecot-imapd,
#        RUNS=7 bench/store/run.sh      dovecot-lmtpd and postfix with apt-get
#                                       when missing, starting no service)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
BENCH_DIR=${BENCH_DIR:-/var/tmp}

# --- peers: Debian packages, installed without starting their services -----
need=()
for p in dovecot-imapd dovecot-lmtpd postfix; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "bench/store: run as root to install ${need[*]}" >&2
		exit 1
	fi
	created_policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		created_policy=1
	fi
	echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
	if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
if [ "$(id -u)" != 0 ]; then
	echo "bench/store: Postfix and Dovecot need root to start (they drop privileges)" >&2
	exit 1
fi

T=$(mktemp -d "$BENCH_DIR/mailfleet-bench.XXXXXX")
chmod 755 "$T"
pids=()
postfix_started=
cleanup() {
	if [ -n "$postfix_started" ]; then postfix -c "$T/postfix" stop >/dev/null 2>&1 || true; fi
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	done
	rm -rf "$T"
}
trap cleanup EXIT

mkdir -p "$T/bin"
go build -o "$T/bin/mailfleetd" ./cmd/mailfleetd
go build -o "$T/bin/load" ./bench/store
load="$T/bin/load"
results="$T/results.jsonl"
: >"$results"
read -r -a port <<<"$("$load" free-ports 8 | tr '\n' ' ')"
hash=$(doveadm pw -s SSHA512 -p pw)
U1=user@bench.test # receives the SMTP/LMTP load
U2=imap@bench.test # holds the 1,000 messages for IMAP

echo "# bench/store: $(nproc) CPU, $(free -g | awk '/Mem:/{print $2}') GiB, storage $(df -P "$T" | awk 'NR==2{print $1}') ($(stat -f -c %T "$T")), $(go version | cut -d' ' -f3), postfix $(postconf -d -h mail_version 2>/dev/null), dovecot $(dovecot --version | cut -d' ' -f1), RUNS=$RUNS, load average at start $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$T/header"

# --- mailfleet ---------------------------------------------------------------
M="$T/mailfleet"
mkdir -p "$M"
printf '%s:%s\n%s:%s\n' $U1 "$hash" $U2 "$hash" >"$M/passwd"
head -c 32 /dev/urandom | base64 >"$M/secret"
chmod 600 "$M/passwd" "$M/secret"
cat >"$M/store.json" <<END_STORE
{"format_version": 1, "instance": "bench", "hostname": "bench.test",
 "listeners": {"smtp": "127.0.0.1:${port[0]}", "lmtp": "127.0.0.1:${port[1]}", "imap": "127.0.0.1:${port[2]}", "admin": "127.0.0.1:${port[3]}"},
 "storage_path": "$M/storage", "queue_path": "$M/queue", "run_path": "$M/run", "log_dir": "$M/log", "log_name": "bench",
 "admin_secret_file": "$M/secret", "passwd_file": "$M/passwd", "domains": ["bench.test"],
 "trusted_networks": [], "resolver": {"nameservers": [], "timeout": "5s", "retries": 0}, "limits": {}}
END_STORE
"$T/bin/mailfleetd" store -config "$M/store.json" 2>"$M/stderr" &
pids+=($!)

# --- Postfix: SMTP acceptance, virtual(8) delivery to maildir --------------
P="$T/postfix"
mkdir -p "$P/vmail" "$P/queue" "$P/data"
chown nobody:nogroup "$P/vmail"
chown postfix "$P/data"
printf '%s bench.test/user/\n' $U1 >"$P/vmailbox"
cat >"$P/main.cf" <<END_MAIN_CF
compatibility_level = 3.6
queue_directory = $P/queue
data_directory = $P/data
maillog_file = $P/maillog
myhostname = bench.test
mydomain = bench.test
myorigin = bench.test
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
virtual_mailbox_domains = bench.test
virtual_mailbox_base = $P/vmail
virtual_mailbox_maps = texthash:$P/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
biff = no
END_MAIN_CF
# Debian's master.cf, without chroot, smtpd on the bench port only.
awk -v port="${port[4]}" '
	/^smtp[ \t]+inet/ { print "127.0.0.1:" port " inet n - n - - smtpd"; next }
	/^#/ || /^[ \t]/ || NF == 0 { print; next }
	NF >= 8 { $5 = "n"; print; next }
	{ print }' /usr/share/postfix/master.cf.dist >"$P/master.cf"
grep -q '^postlog' "$P/master.cf" || echo 'postlog unix-dgram n - n - 1 postlogd' >>"$P/master.cf"
postfix -c "$P" check >/dev/null 2>&1 || true
postfix -c "$P" start >/dev/null
postfix_started=1

# --- Dovecot: LMTP delivery and IMAP, as Debian ships it and tuned -----------
dovecot_conf() { # dir imap-port lmtp-port
	local dir=$1
	mkdir -p "$dir/mail" "$dir/run" "$dir/state"
	chown nobody:nogroup "$dir/mail"
	printf '%s:%s::::::\n%s:%s::::::\n' $U1 "$hash" $U2 "$hash" >"$dir/passwd"
	chmod 644 "$dir/passwd"
	cat >"$dir/dovecot.conf" <<END_DOVECOT_CONF
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:$dir/mail/%d/%n
mail_fsync = always
passdb {
  driver = passwd-file
  args = scheme=SSHA512 $dir/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$dir/mail/%d/%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $2
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $3
  }
}
protocol lmtp {
  auth_username_format = %Lu
}
protocol imap {
  # the 16 concurrent clients log in as one user from one address
  mail_max_userip_connections = 100
}
END_DOVECOT_CONF
}
D="$T/dovecot"
dovecot_conf "$D" "${port[5]}" "${port[6]}"
dovecot -c "$D/dovecot.conf"
# Dovecot's "high-performance mode" (its documentation's tuning for busy
# servers): login and imap processes serve many sessions and stay ready,
# instead of one new process per connection.
DT="$T/dovecot-tuned"
dovecot_conf "$DT" "${port[7]}" 0
cat >>"$DT/dovecot.conf" <<END_TUNING
service imap-login {
  service_count = 0
  process_min_avail = 2
}
service imap {
  service_count = 0
  process_min_avail = 2
}
service auth {
  client_limit = 2000
}
END_TUNING
dovecot -c "$DT/dovecot.conf"
"$load" wait-port "127.0.0.1:${port[0]}" "127.0.0.1:${port[1]}" "127.0.0.1:${port[2]}" "127.0.0.1:${port[4]}" \
	"127.0.0.1:${port[5]}" "127.0.0.1:${port[6]}" "127.0.0.1:${port[7]}"
pids+=("$(cat "$D/run/master.pid")" "$(cat "$DT/run/master.pid")")

# --- the same loads against every target, round after round ---------------
# target address lmtp-flag maildir-of-U1
smtp_targets=("mailfleet 127.0.0.1:${port[0]} - $M/storage/bench.test/user" "postfix 127.0.0.1:${port[4]} - $P/vmail/bench.test/user")
lmtp_targets=("mailfleet 127.0.0.1:${port[1]} -lmtp $M/storage/bench.test/user" "dovecot 127.0.0.1:${port[6]} -lmtp $D/mail/bench.test/user")
imap_targets=("mailfleet 127.0.0.1:${port[2]}" "dovecot 127.0.0.1:${port[5]}" "dovecot-tuned 127.0.0.1:${port[7]}")
for t in "${imap_targets[@]}"; do
	read -r name addr <<<"$t"
	"$load" imap-fill -addr "$addr" -user $U2 -pass pw -messages 1000
done
round() { # $round_flags: "-runs 0" (warm-up) or "-runs 1 -warmup=false"
	local proto senders t name addr lmtp md flags
	for proto in SMTP LMTP; do
		local targets=("${smtp_targets[@]}")
		[ $proto = SMTP ] || targets=("${lmtp_targets[@]}")
		for senders in 1 16; do
			for t in "${targets[@]}"; do
				read -r name addr lmtp md <<<"$t"
				flags=""
				[ "$lmtp" = - ] || flags=$lmtp
				"$load" smtp -target "$name" -addr "$addr" $flags -maildir "$md" -to $U1 -senders $senders \
					-messages $((senders == 1 ? 300 : 1600)) -test "$proto 10 KB, $senders sender$([ $senders = 1 ] || echo s)" \
					$round_flags >>"$results"
			done
		done
	done
	for t in "${imap_targets[@]}"; do
		read -r name addr <<<"$t"
		"$load" imap-sessions -target "$name" -addr "$addr" -user $U2 -pass pw -clients 1 -sessions 300 \
			-test "IMAP sessions (login, select, fetch 10, logout), 1 client" $round_flags >>"$results"
		"$load" imap-sessions -target "$name" -addr "$addr" -user $U2 -pass pw -clients 16 -sessions 1600 \
			-test "IMAP sessions (login, select, fetch 10, logout), 16 clients" $round_flags >>"$results"
		"$load" imap-fetch -target "$name" -addr "$addr" -user $U2 -pass pw -what headers \
			-test "IMAP FETCH 1:1000 (FLAGS UID RFC822.SIZE BODY.PEEK[HEADER])" $round_flags >>"$results"
		"$load" imap-fetch -target "$name" -addr "$addr" -user $U2 -pass pw -what full \
			-test "IMAP FETCH 1:1000 (FLAGS UID BODY.PEEK[])" $round_flags >>"$results"
	done
}
round_flags="-runs 0"
echo "# warm-up round" >&2
round
round_flags="-runs 1 -warmup=false"
for r in $(seq "$RUNS"); do
	echo "# round $r of $RUNS (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
	round
done

echo
cat "$T/header"
echo "# load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$load" report "$results"

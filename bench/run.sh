#!/bin/sh
# bench/run.sh: Tsubame against Debian's Postfix on this machine, in one run (`make bench`).
#
# Both systems run from a private temp area (nothing outside it is configured or touched,
# traffic only on loopback), accept mail for demo@example.test and deliver it to a Maildir
# with their default durability, and relay mail for the non-local domain relay.test to an
# smtp-sink of their own on 127.0.0.9, which counts what arrives.  bench/measure.py drives
# the same measurements against each and prints one line per figure:
#   bench NAME tsubame=VALUE postfix=VALUE ratio=VALUE unit=UNIT
# Needs root (Postfix's master and Tsubame's privilege drop), /usr/sbin/postfix,
# /usr/sbin/smtp-source, /usr/sbin/smtp-sink and python3.  Knobs (environment): BENCH_ROUNDS,
# BENCH_MSGS_10, BENCH_MSGS_100, BENCH_RELAY_MSGS_10, BENCH_RELAY_MSGS_100, BENCH_LAT_MSGS,
# BENCH_IDLE (see measure.py), BENCH_KEEP=1 (keep the temp area and its logs), TSUBAME_BIN,
# PYTHON.  See bench/README.md.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN=${TSUBAME_BIN:-$REPO/build/release/bin}
TSUBAMED=$BIN/tsubamed
RUN_USER=tsubame

die() { echo "bench: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (Postfix's master and tsubamed's privilege drop need it)"
[ -x "$TSUBAMED" ] || die "$TSUBAMED missing: run make first"
PYTHON=${PYTHON:-/usr/bin/python3}
for t in /usr/sbin/postfix /usr/sbin/smtp-source /usr/sbin/smtp-sink "$PYTHON" openssl script; do
	command -v "$t" >/dev/null 2>&1 || die "$t missing: scripts/install-deps.sh bench"
done
id "$RUN_USER" >/dev/null 2>&1 ||
	useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_USER"
RUN_UID=$(id -u "$RUN_USER")
RUN_GID=$(id -g "$RUN_USER")

# Free loopback ports (bind to port 0 and read back what the kernel chose): one listener per
# system on 127.0.0.1, and one sink per system on another loopback address, so that relayed
# mail really goes to another host and each system's deliveries are counted apart.
SINK_ADDR=127.0.0.9
free_port() { # [ADDRESS]
	"$PYTHON" -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' \
		"${1:-127.0.0.1}"
}
PORT_T=$(free_port)
PORT_P=$(free_port)
while [ "$PORT_P" = "$PORT_T" ]; do PORT_P=$(free_port); done
SINK_T=$(free_port $SINK_ADDR)
SINK_P=$(free_port $SINK_ADDR)
while [ "$SINK_P" = "$SINK_T" ]; do SINK_P=$(free_port $SINK_ADDR); done

TMP=$(mktemp -d /tmp/tsubame-bench.XXXXXX)
chmod 0755 "$TMP"
T=$TMP/tsubame
P=$TMP/postfix
TSUBAME_PID=""
POSTFIX_STARTED=""
MEASURE_PID=""
SINK_PIDS=""

# Stop both systems (bounded waits); safe to call twice.
stop_systems() {
	if [ -n "$TSUBAME_PID" ]; then
		pid=$TSUBAME_PID
		TSUBAME_PID=""
		mainlog=$(ls "$T"/work/log/*/main.log 2>/dev/null | head -n 1)
		seen=$(cat "$mainlog" 2>/dev/null | wc -l)
		kill -TERM "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
		if kill -0 "$pid" 2>/dev/null; then
			echo "bench: tsubame: did not stop within 15 s of SIGTERM; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		st=0
		wait "$pid" 2>/dev/null || st=$?
		[ "$st" -eq 0 ] || echo "bench: tsubame: tsubamed exited with status $st after SIGTERM"
		# what tsubamed said about itself while stopping
		if [ -n "$mainlog" ]; then
			tail -n +"$((seen + 1))" "$mainlog" | grep -E '\]: (warning|fatal|panic) ' |
				sed 's/^/bench: tsubame: while stopping: /' || true
		fi
	fi
	if [ -n "$POSTFIX_STARTED" ]; then
		POSTFIX_STARTED=""
		timeout 60 postfix -c "$P/etc" stop >/dev/null 2>&1 || true
		# in case `postfix stop` returned before the master was gone
		i=0
		while [ -s "$P/queue/pid/master.pid" ] &&
			kill -0 "$(cat "$P/queue/pid/master.pid" 2>/dev/null || echo 0)" 2>/dev/null &&
			[ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	fi
}

cleanup() {
	rc=$?
	trap - EXIT INT TERM HUP
	if [ -n "$MEASURE_PID" ]; then
		kill -TERM "$MEASURE_PID" 2>/dev/null || true
		i=0
		while kill -0 "$MEASURE_PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "$MEASURE_PID" 2>/dev/null || true
	fi
	stop_systems
	for pid in $SINK_PIDS; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	SINK_PIDS=""
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "bench: kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

HASH=$(openssl passwd -6 secret)

# ---- the sinks ----------------------------------------------------------------
# One Postfix smtp-sink per system.  With -c it writes "sess=N quit=N mesg=N\r" to its stdout
# whenever a session ends, a QUIT arrives or a final "." is received; that goes to a file
# (never a pipe that could make it wait for a reader) and measure.py reads the last complete
# record.  The messages themselves are thrown away.  -m: more sessions at once than either
# system opens.
start_sink() { # NAME PORT
	/usr/sbin/smtp-sink -c -u "$RUN_USER" -m 500 "$SINK_ADDR:$2" 1000 \
		</dev/null >"$TMP/sink-$1.count" 2>"$TMP/sink-$1.log" &
	SINK_PIDS="$SINK_PIDS $!"
	SINK_PID=$!
}
start_sink tsubame "$SINK_T"
SINK_PID_T=$SINK_PID
start_sink postfix "$SINK_P"
SINK_PID_P=$SINK_PID

# ---- Tsubame ------------------------------------------------------------------
mkdir -p "$T/etc" "$T/work" "$T/mail"
chmod 0755 "$T" "$T/etc" "$T/work" "$T/mail"
chown "$RUN_UID:$RUN_GID" "$T/work" "$T/mail"
cat >"$T/etc/tsubame.conf" <<EOF
# written by bench/run.sh
hostname = bench.example.test
work_dir = $T/work
user = $RUN_USER
listen = 127.0.0.1:$PORT_T
mailbox_path = $T/mail/%DOMAIN%/%USERNAME%/Maildir
max_message_size = 0
# relay.test goes to the sink through the gateway table (opportunistic STARTTLS: the sink
# offers none); 127.0.0.1 may relay; DNS goes nowhere (the gateway is an address anyway)
gateway_file = gateways
relay_rules_file = relay
dns_servers = 127.0.0.1:9
EOF
echo "example.test" >"$T/etc/domains"
printf 'demo\t%s\tDemo\texample.test\t\t1\t0\t0\n' "$HASH" >"$T/etc/accounts"
: >"$T/etc/aliases"
echo "relay.test,$SINK_ADDR,$SINK_T" >"$T/etc/gateways"
echo "127.0.0.1 true" >"$T/etc/relay"
chmod 0644 "$T/etc/"*

"$TSUBAMED" -n -c "$T/etc/tsubame.conf" >/dev/null || die "tsubamed -n rejected $T/etc/tsubame.conf"
"$BIN/tsubamectl" -c "$T/etc/tsubame.conf" relay check 127.0.0.1 bench@sender.test sink@relay.test \
	>"$T/relay-check.log" 2>&1 ||
	{ cat "$T/relay-check.log" >&2; die "tsubame would not relay for 127.0.0.1 to relay.test"; }
"$TSUBAMED" -c "$T/etc/tsubame.conf" </dev/null >"$T/stderr.log" 2>&1 &
TSUBAME_PID=$!

# ---- Postfix ------------------------------------------------------------------
mkdir -p "$P/etc" "$P/queue" "$P/data" "$P/mail"
chmod 0755 "$P" "$P/etc" "$P/mail"
chown "$RUN_UID:$RUN_GID" "$P/mail"
chown postfix "$P/data"
cat >"$P/etc/main.cf" <<EOF
# written by bench/run.sh: a private instance, default durability, virtual Maildir delivery
compatibility_level = 3.6
config_directory = $P/etc
queue_directory = $P/queue
data_directory = $P/data
myhostname = bench.example.test
mydomain = example.test
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
virtual_mailbox_domains = example.test
virtual_mailbox_base = $P/mail
virtual_mailbox_maps = inline:{ demo@example.test=example.test/demo/ }
virtual_uid_maps = static:$RUN_UID
virtual_gid_maps = static:$RUN_GID
virtual_minimum_uid = 100
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit_auth_destination, reject
message_size_limit = 0
mailbox_size_limit = 0
virtual_mailbox_limit = 0
# relay.test goes to the sink (an address: no lookup); nothing else leaves this instance,
# and nothing asks DNS
relay_domains = relay.test
transport_maps = inline:{ relay.test=smtp:[$SINK_ADDR]:$SINK_P }
smtp_tls_security_level = none
default_transport = error:bench instance delivers locally only
relay_transport = error:bench instance delivers locally only
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no
biff = no
maillog_file = $P/maillog
maillog_file_prefixes = $P
alias_maps =
alias_database =
EOF
cat >"$P/etc/master.cf" <<EOF
# written by bench/run.sh: one inet listener (127.0.0.1:$PORT_P), no chroot; smtpd's
# process limit is 200 rather than 100 so that 100 idle sessions never meet it.
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$PORT_P inet n - n - 200 smtpd
cleanup   unix  n       -       n       -       0       cleanup
smtp      unix  -       -       n       -       -       smtp
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
chmod 0644 "$P/etc/main.cf" "$P/etc/master.cf"
# Postfix logs its command-line errors to syslog, or to stderr only when that is a terminal:
# give it one with script(1) so that a failure explains itself.
pf() {
	timeout 60 script -qec "postfix -c $P/etc $*" /dev/null >>"$P/setup.log" 2>&1 ||
		{ cat "$P/setup.log" >&2; die "postfix $* failed"; }
}
# `check` creates the queue directories with the ownership Postfix wants and checks the rest.
pf check
POSTFIX_STARTED=1
pf start

# ---- measure ------------------------------------------------------------------
# In the background, so that a signal to this script runs the trap at once (a shell defers
# traps until its foreground command ends); cleanup() stops measure.py first.
rc=0
"$PYTHON" "$HERE/measure.py" --figures "$TMP/figures" \
	--tsubame "pid=$TSUBAME_PID,port=$PORT_T,maildir=$T/mail/example.test/demo/Maildir,log=$T/work/log" \
	--tsubame-sink "pid=$SINK_PID_T,port=$SINK_T,count=$TMP/sink-tsubame.count" \
	--postfix "pidfile=$P/queue/pid/master.pid,port=$PORT_P,maildir=$P/mail/example.test/demo,log=$P/maillog" \
	--postfix-sink "pid=$SINK_PID_P,port=$SINK_P,count=$TMP/sink-postfix.count" &
MEASURE_PID=$!
wait "$MEASURE_PID" || rc=$?
MEASURE_PID=""
stop_systems
# The figures come last, one line each, so that runs can be compared over time.
cat "$TMP/figures" 2>/dev/null || true
exit $rc

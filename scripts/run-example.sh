#!/bin/sh
# `make run`: render the example configuration into a run folder, create the demo
# account on first start, say how to send a test mail, then run tsubamed in the
# foreground (Ctrl-C stops it gracefully).
set -eu
cd "$(dirname "$0")/.."
REPO=$(pwd)
BIN="${TSUBAME_BIN:-$REPO/build/release/bin}"
RUN="${TSUBAME_RUN:-$REPO/run}"

if [ "$(id -u)" -eq 0 ]; then
  id tsubame >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin tsubame
  mkdir -p "$RUN"
  # The unprivileged processes must reach the run folder; a home folder such as /root is closed to them.
  if ! runuser -u tsubame -- test -x "$RUN" 2>/dev/null; then
    RUN=/var/tmp/tsubame-example
    echo "note: $REPO is not reachable by the 'tsubame' user; using $RUN"
  fi
fi
mkdir -p "$RUN"
chmod 755 "$RUN"
sed "s|@RUN@|$RUN|g" etc/example/tsubamed.conf.in > "$RUN/tsubamed.conf"
# Extra parameters for tests (e.g. a loopback DNS server), one "name = value" line.
[ -n "${TSUBAME_EXAMPLE_EXTRA:-}" ] && printf '%s\n' "$TSUBAME_EXAMPLE_EXTRA" >> "$RUN/tsubamed.conf"
for f in domains aliases received.tmpl relay hold; do
  [ -f "$RUN/$f" ] || cp "etc/example/$f" "$RUN/$f"
done
if [ ! -s "$RUN/tls/cert.pem" ]; then
  mkdir -p "$RUN/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=mx.example.test" \
    -addext "subjectAltName=DNS:mx.example.test,DNS:mx.branch.test,DNS:localhost,IP:127.0.0.1,IP:127.0.0.2" \
    -keyout "$RUN/tls/key.pem" -out "$RUN/tls/cert.pem" 2>/dev/null
  chmod 600 "$RUN/tls/key.pem"
fi
CTL="$BIN/tsubamectl -c $RUN/tsubamed.conf"
if [ ! -s "$RUN/accounts" ] || ! grep -q "^demo	" "$RUN/accounts"; then
  PW=$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')
  $CTL account add demo@example.test -p "$PW" -n "Demo User" >/dev/null
  echo "$PW" > "$RUN/demo-password"
  chmod 600 "$RUN/demo-password"
fi
"$BIN/tsubamed" -n -c "$RUN/tsubamed.conf"

cat <<MSG

  Tsubame is starting with the example configuration:
    127.0.0.1:2525  SMTP (STARTTLS offered; relaying only after AUTH)
    127.0.0.1:2465  SMTP over implicit TLS
    127.0.0.1:2587  submission: STARTTLS, then AUTH required
    127.0.0.2:2525  the virtual host branch.test (its own address and greeting; docs/virtual-hosts.md)
    configuration   $RUN/tsubamed.conf
    demo account    demo@example.test   (password: $(cat "$RUN/demo-password"))
    its Maildir     $RUN/mail/example.test/demo/Maildir
    logs            $RUN/work/log/mx.example.test/

  Send a test mail from another terminal:
    swaks --server 127.0.0.1:2525 --to demo@example.test
  or submit one as the demo user (TLS + AUTH):
    swaks --server 127.0.0.1:2587 -tls --auth-user demo@example.test --auth-password $(cat "$RUN/demo-password") \
          --from demo@example.test --to someone@example.org
  then look at it:
    ls $RUN/mail/example.test/demo/Maildir/new/
  Queue:  $CTL queue list

  Dial-up demo (docs/etrn.md): mail to anyone@dialup.test is held until
    printf 'EHLO me\r\nETRN dialup.test\r\nQUIT\r\n' | nc -C 127.0.0.1 2525
  releases it to the customer's host, 127.0.0.1:2526 (e.g. python3 -m aiosmtpd -n -l 127.0.0.1:2526).

MSG
exec "$BIN/tsubamed" -c "$RUN/tsubamed.conf"

#!/bin/sh
# Installs the Debian packages Tsubame needs to build, run, test and benchmark.
# Idempotent: installs only what is missing, so `make run` and `make test` call it every time.
set -eu

BUILD="openssl build-essential pkg-config clang libclang-rt-14-dev libssl-dev libevent-dev libc-ares-dev libcrypt-dev libcmocka-dev"
# postfix, sasl2-bin (saslpasswd2) and libsasl2-modules (PLAIN, LOGIN, sasldb): the private Postfix
# smart host of tests/integration/test_smarthost_postfix.py.
TEST="python3 python3-pytest python3-aiosmtpd python3-dnslib swaks libnet-ssleay-perl libauthen-sasl-perl openssl postfix sasl2-bin libsasl2-modules"
BENCH="postfix"

want="$BUILD"
case "${1:-}" in
  run) ;;
  test) want="$want $TEST" ;;
  bench) want="$want $TEST $BENCH" ;;
  *) want="$want $TEST $BENCH" ;;
esac

missing=""
for p in $want; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Postfix is only a test and benchmark peer: keep its installer from configuring a live system MTA.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections 2>/dev/null || true
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

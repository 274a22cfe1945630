#!/bin/sh
# Integration and crash tests (pytest) against the binaries in $TSUBAME_BIN
# (default: build/asan/bin).  Debian's python3-pytest is used on purpose:
# /usr/bin/python3, not whatever python3 comes first on PATH.
set -eu
cd "$(dirname "$0")/.."
: "${TSUBAME_BIN:=$(pwd)/build/asan/bin}"
export TSUBAME_BIN
for b in tsubamed tsubamectl; do
  if [ ! -x "$TSUBAME_BIN/$b" ]; then
    echo "run-integration: $TSUBAME_BIN/$b is missing (make asan)" >&2
    exit 1
  fi
done
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider "$@" tests/integration tests/crash

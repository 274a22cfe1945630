#!/bin/sh
# Runs each libFuzzer target for SECONDS on its seed corpus (tests/fuzz/corpus/<name>).
# New inputs go to build/fuzz/corpus/<name> so the committed corpus only grows by hand.
set -eu
secs="$1"; shift
for bin in "$@"; do
  name=$(basename "$bin"); name=${name#fuzz_}
  seed="tests/fuzz/corpus/$name"; work="build/fuzz/corpus/$name"
  mkdir -p "$seed" "$work"
  echo "fuzz: $name for ${secs}s"
  "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -print_final_stats=0 "$work" "$seed" >build/fuzz/$name.log 2>&1 || {
    echo "fuzz: $name FAILED"; tail -40 build/fuzz/$name.log; exit 1; }
done

#!/usr/bin/env bash
# Times every loom model on its own, one thread, with the settings of scripts/test-all.sh,
# slowest first: where the loom suite's time goes. Extra arguments pick test files
# (e.g. `queue pipe`); by default every file of loom-tests/tests.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}/loom"
export RUSTFLAGS="--cfg shmproc_loom -D warnings" CARGO_TARGET_DIR="$target"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
files=("$@")
[ ${#files[@]} -gt 0 ] || files=($(ls loom-tests/tests | sed 's/\.rs$//'))
out=$(mktemp)
for f in "${files[@]}"; do
  bin=$(cargo test -p loom-tests --release --test "$f" --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
  for t in $("$bin" --list 2>/dev/null | sed -n 's/: test$//p'); do
    s=$(date +%s.%N)
    if "$bin" --exact "$t" --test-threads=1 >/dev/null 2>&1; then r=ok; else r=FAILED; fi
    e=$(date +%s.%N)
    printf '%8.2f s  %-6s %s::%s\n' "$(echo "$e - $s" | bc)" "$r" "$f" "$t" | tee -a "$out"
  done
done
echo "--- slowest first"
sort -rn "$out"
awk '{s += $1} END {printf "total %.1f s\n", s}' "$out"
rm -f "$out"

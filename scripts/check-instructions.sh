#!/usr/bin/env bash
# The instruction-count check of the hot paths: builds benches/src/bin/instructions.rs with
# the bench profile, counts each operation's instructions with callgrind (only inside the
# operation's measured function: --toggle-collect), and compares them with the table in
# benches/instructions.txt. Prints the table always; fails if a count rose more than 10%.
# Without valgrind it says that the check was skipped and why, and does not fail.
#
#   ./scripts/check-instructions.sh            # every operation of the table
#   N=200000 ./scripts/check-instructions.sh   # more operations per count (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
table=benches/instructions.txt
n="${N:-100000}"
target="${CARGO_TARGET_DIR:-target}"

if ! command -v valgrind >/dev/null 2>&1; then
  echo "instruction counts: SKIPPED (valgrind is not installed; apt-get install valgrind)"
  exit 0
fi

bin=$(cargo build --profile bench -p shmproc-benches --bin instructions --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "instruction counts: the measuring program did not build:"
  cargo build --profile bench -p shmproc-benches --bin instructions
  exit 1
fi

out="$target/instructions"
mkdir -p "$out"
failed=0
printf '%-22s %10s %10s %8s\n' operation table measured change
while read -r op expected _; do
  case "$op" in ''|'#'*) continue ;; esac
  file="$out/callgrind.$op.out"
  if ! valgrind --tool=callgrind --toggle-collect="*::$op" --callgrind-out-file="$file" \
      "$bin" "$op" "$n" >"$out/$op.log" 2>&1; then
    echo "$op: the program failed under valgrind:"; tail -n 20 "$out/$op.log"; exit 1
  fi
  total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$file")
  [ -n "$total" ] || { echo "$op: no totals in $file"; exit 1; }
  read -r measured change verdict < <(awk -v t="$total" -v n="$n" -v e="$expected" 'BEGIN {
    m = t / n; c = (m - e) / e * 100;
    v = (c > 10) ? "ROSE" : (c < -10 ? "fell" : "ok");
    printf "%.1f %+.1f%% %s\n", m, c, v }')
  printf '%-22s %10s %10s %8s  %s\n' "$op" "$expected" "$measured" "$change" "$verdict"
  case "$verdict" in
    ROSE) failed=1 ;;
    fell) echo "  (lower than the table: lower its line in $table with the change that did it)" ;;
  esac
done < "$table"
if [ "$failed" = 1 ]; then
  echo "instruction counts: a hot path rose more than 10% above $table"
  echo "(callgrind_annotate --inclusive=yes $out/callgrind.<operation>.out shows where)"
  exit 1
fi
echo "instruction counts: ok ($n operations each; callgrind files in $out)"

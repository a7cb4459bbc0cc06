#!/usr/bin/env bash
# Runs every check and every test of shmproc, as CI does:
#   formatting, clippy (workspace, all targets, all features), unit + multi-process
#   integration + doc tests, every benchmark once as a smoke test, the instruction counts
#   of the hot paths, every example, and the loom suite.
# Installs what it needs (the rustfmt and clippy components) on a fresh machine.
#
# Honours CARGO_TARGET_DIR (default: target/); the loom build goes to <target>/loom, the
# examples' output to <target>/example-logs/<name>.log, the callgrind files of the
# instruction counts to <target>/instructions/. Prints how long each step took.
set -euo pipefail

# A relative CARGO_TARGET_DIR means relative to where the script was started.
if [ -n "${CARGO_TARGET_DIR:-}" ] && [ "${CARGO_TARGET_DIR#/}" = "$CARGO_TARGET_DIR" ]; then
  CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR"
fi
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TARGET_DIR="$target"

times=()
current=""
started=$SECONDS
step_started=$SECONDS
end_step() {
  [ -n "$current" ] && times+=("$(printf '%4d s  %s' $((SECONDS - step_started)) "$current")")
  return 0
}
step() {
  end_step
  current="$*"
  step_started=$SECONDS
  printf '\n==> %s\n' "$*"
}

if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets --all-features -- -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo check (default features, all targets)"
cargo check --workspace --all-targets

step "cargo doc (warnings are errors: broken links, missing docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features -p shmproc -p shmproc-testkit

step "unit, multi-process integration and doc tests (all features)"
cargo test --all-features --workspace

step "benchmarks, once each (smoke test; measure with cargo bench -p shmproc-benches)"
cargo test -p shmproc-benches --benches

step "instruction counts of the hot paths (benches/instructions.txt)"
./scripts/check-instructions.sh

step "examples"
cargo build --all-features --examples
logs="$target/example-logs"
mkdir -p "$logs"
for src in examples/*.rs examples/*/main.rs; do
  [ -e "$src" ] || continue
  name=$(basename "$src" .rs)
  [ "$name" = main ] && name=$(basename "$(dirname "$src")")
  printf -- '--- example %s\n' "$name"
  # The binary the build above made (a `cargo run` each re-checked the workspace: ~0.7 s).
  timeout 120 "$target/debug/examples/$name" >"$logs/$name.log" 2>&1 || {
    echo "example $name failed ($logs/$name.log):"; tail -n 40 "$logs/$name.log"; exit 1; }
done

# One model at a time: loom maps, guards and unmaps a stack for every thread of every
# execution (200,000 mmap / mprotect / munmap for one semaphore model), and two models at
# once serialise on the process's memory-map lock: the suite took 122 s on two test
# threads, 91 s on one, the system time most of both.
step "loom suite (model checks of every algorithm)"
RUSTFLAGS="--cfg shmproc_loom -D warnings" CARGO_TARGET_DIR="$target/loom" \
  LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" cargo test -p loom-tests --profile loom -- --test-threads=1

end_step
printf '\n==> time per step\n'
printf '%s\n' "${times[@]}"
printf '%4d s  in all\n' $((SECONDS - started))

printf '\n==> all checks passed\n'

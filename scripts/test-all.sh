#!/usr/bin/env bash
# Runs every check and every test of shmproc, as CI does:
#   formatting, clippy (all targets, all features), unit + multi-process integration +
#   doc tests, every benchmark once as a smoke test, every example, and the loom suite.
# Installs what it needs (the rustfmt and clippy components) on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets --all-features -- -D warnings"
cargo clippy --all-targets --all-features -- -D warnings

step "cargo check (default features, all targets)"
cargo check --all-targets

step "cargo doc (warnings are errors: broken links, missing docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features

step "unit, multi-process integration and doc tests (all features)"
cargo test --all-features --workspace

step "benchmarks, once each (smoke test; measure with cargo bench)"
cargo test --all-features --benches

step "examples"
cargo build --all-features --examples
for src in examples/*.rs examples/*/main.rs; do
  [ -e "$src" ] || continue
  name=$(basename "$src" .rs)
  [ "$name" = main ] && name=$(basename "$(dirname "$src")")
  printf -- '--- example %s\n' "$name"
  timeout 120 cargo run --quiet --all-features --example "$name" >/tmp/shmproc-example-$name.log 2>&1 || {
    echo "example $name failed:"; tail -n 40 /tmp/shmproc-example-$name.log; exit 1; }
done

step "loom suite (model checks of every algorithm)"
RUSTFLAGS="--cfg shmproc_loom -D warnings" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" \
  cargo test -p loom-tests --release

step "all checks passed"

#!/usr/bin/env bash
# Runs the whole Stratus test suite: formatting, lints, and every test of the workspace.
# Everything the tests need is installed or started from here, so this is all a fresh
# Debian machine with the Rust toolchain needs.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked

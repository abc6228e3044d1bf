#!/usr/bin/env bash
# Fuzzes every target for SECONDS each (default 30: a smoke run; the release check is 600).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets the stable toolchain use
# the sanitizer flags cargo-fuzz passes. Fails if a target does not build or any run finds a crash.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"
targets=(idx csv photo oip_request model_spec model_dir onnx)
RUSTC_BOOTSTRAP=1 cargo fuzz build -O
python3 make_corpora.py
mkdir -p corpus/onnx
cargo run -q --release --manifest-path ../Cargo.toml -- convert corpus/onnx-model corpus/onnx/small.onnx
mkdir -p logs
for target in "${targets[@]}"; do
  echo "== $target, ${seconds}s"
  status=0
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 >"logs/$target.log" 2>&1 || status=$?
  grep -E "^(Done|#[0-9]+.*DONE)|ERROR|panicked" "logs/$target.log" || true
  if [ "$status" -ne 0 ] || { [ -d "artifacts/$target" ] && [ -n "$(ls -A "artifacts/$target")" ]; }; then
    echo "error: fuzz target $target failed (exit $status); see fuzz/logs/$target.log and fuzz/artifacts/$target" >&2
    exit 1
  fi
done

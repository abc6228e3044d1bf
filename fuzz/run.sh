#!/usr/bin/env bash
# Fuzzes every target for SECONDS each (default 30: a smoke run; the release check is 600).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets the stable toolchain use
# the sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"
python3 make_corpora.py
mkdir -p corpus/onnx
cargo run -q --release --manifest-path ../Cargo.toml -- convert corpus/onnx-model corpus/onnx/small.onnx
for target in idx csv photo oip_request model_spec model_dir onnx; do
  echo "== $target, ${seconds}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 2>&1 | grep -E "^(Done|#[0-9]+.*(pulse|DONE))|ERROR|panicked" || true
  if [ -d "artifacts/$target" ] && [ -n "$(ls -A "artifacts/$target")" ]; then
    echo "crash found: fuzz/artifacts/$target" >&2
    exit 1
  fi
done

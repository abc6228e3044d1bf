#!/usr/bin/env bash
# Reproduces the README's comparison on this machine: the seed CNN on TensorFlow/Keras, and a
# wardrobe model's own weights on ONNX Runtime and OpenVINO (fp32 and int8), alternating with
# `wardrobe bench` (and `bench --model` on its int8 form).
# Usage: bench/peers/compare.sh [ROUNDS]   (default 2; results in bench/peers/results/)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-2}"
venv=bench/peers/.venv
out=bench/peers/results
mkdir -p "$out"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q tensorflow-cpu==2.21.0 numpy onnx onnxruntime openvino nncf
cargo build --release
wardrobe=target/release/wardrobe
[ -f runs/compare/model.safetensors ] || "$wardrobe" train --epochs 10 --seed 1 --out runs/compare > "$out/train.txt"
[ -f runs/compare-int8/model.json ] || "$wardrobe" quantize runs/compare runs/compare-int8 > "$out/quantize.txt"
for i in $(seq 1 "$rounds"); do
  "$wardrobe" bench --json | tail -1 > "$out/wardrobe_$i.json"
  "$venv/bin/python" bench/peers/keras_seed_cnn.py --epochs 2 | tail -1 > "$out/keras_$i.json"
  "$wardrobe" bench --model runs/compare-int8 --json | tail -1 > "$out/wardrobe_int8_$i.json"
  "$venv/bin/python" bench/peers/ort_seed_cnn.py runs/compare --int8 | tail -1 > "$out/runtimes_$i.json"
done
"$wardrobe" evaluate --model runs/compare | grep accuracy
ls "$out"

"""Runs an ONNX model in ONNX Runtime on raw u8 images; prints the probabilities (and the
out-of-distribution scores when the model has them), the input and output descriptions and the
model's metadata as one JSON object.

usage: onnx_runtime.py MODEL.onnx IMAGES.u8 ROWS COLS [CHANNELS]
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

path, images, rows, cols = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
channels = int(sys.argv[5]) if len(sys.argv) > 5 else 1
onnx.checker.check_model(onnx.load(path), full_check=True)
shape = (-1, rows, cols) if channels == 1 else (-1, rows, cols, channels)
pixels = np.fromfile(images, dtype=np.uint8).reshape(shape)
session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
names = [o.name for o in session.get_outputs()]
results = dict(zip(names, session.run(names, {"images": pixels})))
meta = session.get_modelmeta().custom_metadata_map
describe = lambda v: {"name": v.name, "type": v.type, "shape": v.shape}
print(json.dumps({
    "probabilities": results["probabilities"].tolist(),
    "ood_score": results["ood_score"].tolist() if "ood_score" in results else None,
    "inputs": [describe(i) for i in session.get_inputs()],
    "outputs": [describe(o) for o in session.get_outputs()],
    "metadata": meta,
}))

#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, cut from the real Fashion-MNIST files and presets.

Writes corpus/<target>/ (git-ignored): IDX images and labels (raw and gzipped), Kaggle CSV rows,
OIP v2 requests in every accepted layout, the seed and default architectures (presets/), and
photos (28x28 items and enlarged dark-on-light versions). Needs the dataset-fashion-mnist package.
"""
import gzip, json, os, struct, zlib

DATA = os.environ.get("WARDROBE_DATA", "/usr/share/datasets/fashion-mnist")
HERE = os.path.dirname(os.path.abspath(__file__))


def out(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def png_grey(pixels, w, h):
    raw = b"".join(b"\x00" + bytes(pixels[y * w:(y + 1) * w]) for y in range(h))
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


images = gzip.open(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")).read()[16:]
labels = gzip.open(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz")).read()[8:]
image = lambda i: list(images[i * 784:(i + 1) * 784])

idx_images = struct.pack(">IIII", 0x803, 5, 28, 28) + images[:5 * 784]
idx_labels = struct.pack(">II", 0x801, 100) + labels[:100]
for name, data in [("images5", idx_images), ("labels100", idx_labels)]:
    out("idx", name, data)
    out("idx", name + ".gz", gzip.compress(data))

header = "label," + ",".join(f"pixel{i}" for i in range(1, 785))
rows = [f"{labels[i]}," + ",".join(map(str, image(i))) for i in range(3)]
out("csv", "three.csv", header + "\n" + "\n".join(rows) + "\n")
out("csv", "header_only.csv", header + "\n")

for n, (shape, dtype, data) in enumerate([
    ([1, 28, 28], "UINT8", image(0)),
    ([1, 784], "FP32", [round(v / 255, 4) for v in image(1)]),
    ([1, 1, 28, 28], "UINT8", [[image(2)[r * 28:(r + 1) * 28] for r in range(28)]]),
]):
    request = {"id": f"r{n}", "inputs": [{"name": "images", "shape": shape, "datatype": dtype, "data": data}]}
    if n == 0:
        request["outputs"] = [{"name": "probabilities", "parameters": {"classification": 3}}]
    out("oip_request", f"request{n}.json", json.dumps(request))

for i in range(4):
    out("photo", f"item{i}.png", png_grey(image(i), 28, 28))
    inverted = [255 - v for v in image(i)]
    big = [inverted[(y // 3) * 28 + x // 3] for y in range(84) for x in range(84)]
    out("photo", f"seller{i}.png", png_grey(big, 84, 84))

for preset in ["seed", "default"]:
    with open(os.path.join(HERE, "presets", f"{preset}.json")) as f:
        out("model_spec", f"{preset}.json", f.read())
print("corpora written to", os.path.join(HERE, "corpus"))


# Whole model directories and checkpoints (model_dir): a small convolutional model with
# weights from the real test images, in the target's layout (a mode byte, then each file as a
# 4-byte little-endian length and its bytes).
def safetensors(tensors):
    header, offset, body = {}, 0, b""
    for name, shape, values in tensors:
        raw = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset, body = offset + len(raw), body + raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def values(n, salt):
    return [(images[(i * 7 + salt) % len(images)] - 128) / 1024 for i in range(n)]


names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
spec = {"input": {"h": 8, "w": 8, "c": 1}, "layers": [
    {"type": "conv2d", "filters": 4, "kernel": 3, "padding": "valid", "activation": "relu", "init": "he_normal"},
    {"type": "max_pool2d", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 10, "activation": "linear", "init": "glorot_uniform"}]}
model_json = json.dumps({"format": "wardrobe-model/1", "class_names": names, "spec": spec}).encode()
params = [("0.kernel", [3, 3, 1, 4], values(36, 1)), ("0.bias", [4], values(4, 2)),
          ("3.kernel", [36, 10], values(360, 3)), ("3.bias", [10], values(10, 4))]
weights = safetensors(params)
total = sum(len(v) for _, _, v in params)
trainer = json.dumps({"format": "wardrobe-checkpoint/1", "config": {
    "epochs": 2, "batch_size": 64,
    "optimizer": {"kind": "adam", "lr": 0.001, "momentum": 0.0, "nesterov": False, "l2": 0.0, "weight_decay": 0.0},
    "schedule": {"kind": "cosine", "warmup": 0.0},
    "augment": {"shift": 0, "flip": False, "rotate": 0.0, "erase": 0.0},
    "early_stopping": None, "seed": 1},
    "state": {"epoch": 2, "step": 3, "loss_sum": 1.5, "correct": 20, "seen": 64, "history": [
        {"epoch": 1, "loss": 1.2, "accuracy": 0.6, "val_loss": 0.9, "val_accuracy": 0.7, "lr": 0.0005,
         "seconds": 1.0, "images_per_second": 100.0}], "best_epoch": 1, "stopped_early": False},
    "optimizer_step": 12}).encode()
optimizer = safetensors([("slot0", [total], values(total, 5)), ("slot1", [total], [abs(v) for v in values(total, 6)])])
framed = lambda files: b"".join(struct.pack("<I", len(f)) + f for f in files)
out("model_dir", "model", b"\x00" + framed([model_json, weights]))
out("model_dir", "checkpoint", b"\x01" + framed([model_json, weights, trainer, optimizer]))
# The same small model as a model directory; run.sh converts it to the ONNX seed.
out("onnx-model", "model.json", model_json)
out("onnx-model", "model.safetensors", weights)

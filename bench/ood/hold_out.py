#!/usr/bin/env python3
"""Near out-of-distribution data: Fashion-MNIST with one category held out of training, as a shop
whose catalogue lacks a category that sellers upload anyway.

  OUT/data/       an IDX data directory (with dataset.json) of the other nine categories, for
                  `wardrobe train --data OUT/data`
  OUT/held_out/   the held-out category's test images as PNG files, for
                  `wardrobe evaluate --model RUN --data OUT/data --ood OUT/held_out`

Usage: python3 hold_out.py OUT [CATEGORY] [FASHION_DIR]   (CATEGORY default: Bag; needs numpy, pillow)
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
from PIL import Image

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path):
    with gzip.open(path) as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def write_idx(path, array):
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def main():
    out = sys.argv[1]
    held = NAMES.index(sys.argv[2] if len(sys.argv) > 2 else "Bag")
    source = sys.argv[3] if len(sys.argv) > 3 else "/usr/share/datasets/fashion-mnist"
    kept = [k for k in range(10) if k != held]
    remap = np.full(10, 255, np.uint8)
    remap[kept] = np.arange(9)
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    os.makedirs(os.path.join(out, "held_out"), exist_ok=True)
    counts = {}
    for split in ["train", "t10k"]:
        images = read_idx(os.path.join(source, f"{split}-images-idx3-ubyte.gz"))
        labels = read_idx(os.path.join(source, f"{split}-labels-idx1-ubyte.gz"))
        mask = labels != held
        write_idx(os.path.join(out, "data", f"{split}-images-idx3-ubyte"), images[mask])
        write_idx(os.path.join(out, "data", f"{split}-labels-idx1-ubyte"), remap[labels[mask]])
        counts[split] = int(mask.sum())
        if split == "t10k":
            for i, image in enumerate(images[~mask]):
                # Fashion-MNIST is light on black; photos are dark on light, as a seller's would be.
                Image.fromarray(255 - image).resize((112, 112), Image.BICUBIC).save(
                    os.path.join(out, "held_out", f"{NAMES[held].replace('/', '-')}{i:04}.png"))
    description = {"format": "wardrobe-dataset/1", "classes": [NAMES[k] for k in kept], "height": 28, "width": 28,
                   "channels": 1, "train": counts["train"], "test": counts["t10k"], "duplicates": 0,
                   "sources": [f"{source} without {NAMES[held]}"]}
    with open(os.path.join(out, "data", "dataset.json"), "w") as f:
        json.dump(description, f, indent=2)
    print(f"wrote {counts['train']} training and {counts['t10k']} test images without {NAMES[held]} "
          f"and {int((~mask).sum())} held-out photos to {out}")


main()

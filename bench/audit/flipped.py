#!/usr/bin/env python3
"""How well `wardrobe audit` finds wrong labels: the first N Fashion-MNIST training images with a
seeded 5% of their labels moved to another category, audited, then scored on the findings file's
first 5% of rows (as many rows as there are flipped labels, so recall and precision there are the
same number).

Usage: python3 flipped.py OUT [--images 10000] [--noise 0.05] [--seed 1] [--wardrobe BIN]
                              [-- AUDIT FLAGS...]   (needs numpy)
"""
import argparse
import csv
import gzip
import os
import struct
import subprocess
import sys

import numpy as np

FASHION = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--wardrobe", default="target/release/wardrobe")
    parser.add_argument("audit_flags", nargs="*")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    images = read_idx(f"{FASHION}/train-images-idx3-ubyte.gz")[: args.images].reshape(args.images, -1)
    labels = read_idx(f"{FASHION}/train-labels-idx1-ubyte.gz")[: args.images].astype(np.int64)
    rng = np.random.default_rng(args.seed)
    flipped = rng.choice(args.images, int(round(args.noise * args.images)), replace=False)
    labels[flipped] = (labels[flipped] + rng.integers(1, 10, len(flipped))) % 10
    noisy = os.path.join(args.out, "noisy.csv")
    with open(noisy, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label"] + [f"pixel{i + 1}" for i in range(images.shape[1])])
        for label, row in zip(labels, images):
            w.writerow([label, *row])
    found = os.path.join(args.out, "audit.csv")
    command = [args.wardrobe, "audit", "--train-csv", noisy, "--out", found, "--work", os.path.join(args.out, "work")]
    subprocess.run(command + args.audit_flags, check=True)
    with open(found, newline="") as f:
        rows = list(csv.DictReader(f))
    top = [int(r["path"].removeprefix("train:")) for r in rows[: len(flipped)]]
    hits = len(set(top) & set(flipped.tolist()))
    print(f"{len(flipped)} flipped of {args.images}; first {len(top)} rows hold {hits}: "
          f"recall {hits / len(flipped):.1%}, precision {hits / max(len(top), 1):.1%}")


if __name__ == "__main__":
    sys.exit(main())

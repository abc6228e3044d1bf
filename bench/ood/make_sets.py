#!/usr/bin/env python3
"""Builds folders of photos that are not clothing, from real images that ship inside PyPI
packages (scikit-image's sample photos, scikit-learn's handwritten digits) and text rendered
with the machine's DejaVu font, for `wardrobe evaluate --ood DIR`:

  natural/    crops of natural photos (a cat, an astronaut, coffee, coins, a rocket, ...)
  digits/     handwritten digits on paper (dark ink on white, as a phone would photograph them)
  documents/  receipts and pages of text, and crops of scanned pages

Usage: python3 make_sets.py OUT_DIR [COUNT]   (needs: pip install scikit-image scikit-learn pillow)
"""
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont
import skimage.data
import sklearn.datasets

NATURAL = ["astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "horse", "hubble_deep_field",
           "immunohistochemistry", "retina", "brick", "grass", "gravel", "cell", "clock", "colorwheel", "cat"]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def rgb(img):
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.dtype != np.uint8:
        img = (255 * (img.astype(np.float64) - img.min()) / max(1e-9, float(np.ptp(img)))).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return Image.fromarray(img[..., :3])


def natural(out, count, rng):
    photos = []
    for name in NATURAL:
        try:
            photos.append(rgb(getattr(skimage.data, name)()))
        except Exception as e:  # a sample a version lacks
            print(f"skipping {name}: {e}", file=sys.stderr)
    for i in range(count):
        img = photos[rng.integers(len(photos))]
        w, h = img.size
        side = int(rng.integers(min(w, h) // 6, min(w, h)))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        img.crop((x, y, x + side, y + side)).resize((96, 96)).save(os.path.join(out, f"natural{i:04}.png"))


def digits(out, count, rng):
    d = sklearn.datasets.load_digits()
    for i in range(count):
        k = int(rng.integers(len(d.images)))
        ink = (d.images[k] / 16.0 * 255).astype(np.uint8)
        paper = 255 - ink  # dark ink on white paper
        Image.fromarray(paper).resize((64, 64), Image.BILINEAR).convert("RGB").save(
            os.path.join(out, f"digit{i:04}.png"))


def documents(out, count, rng):
    font = ImageFont.truetype(FONT, 14)
    pages = [rgb(skimage.data.page()), rgb(skimage.data.text())]
    words = "TOTAL EUR VAT CASH CARD RECEIPT Milk Bread Coffee 2.49 1.99 12.00 Thank you Invoice No. Date " \
            "Subtotal Change Qty Price Item Shop Street 12 Berlin".split()
    for i in range(count):
        if i % 3 == 0:
            img = pages[i % 2]
            w, h = img.size
            side = int(rng.integers(min(w, h) // 3, min(w, h)))
            x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            img.crop((x, y, x + side, y + side)).resize((96, 96)).save(os.path.join(out, f"doc{i:04}.png"))
            continue
        img = Image.new("RGB", (160, 200), (250, 250, 245))
        draw = ImageDraw.Draw(img)
        for line in range(int(rng.integers(5, 12))):
            text = " ".join(words[int(j)] for j in rng.integers(0, len(words), int(rng.integers(1, 4))))
            draw.text((8, 8 + 16 * line), text, fill=(20, 20, 20), font=font)
        img.save(os.path.join(out, f"doc{i:04}.png"))


def main():
    out, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 500
    rng = np.random.default_rng(1)
    for name, make in [("natural", natural), ("digits", digits), ("documents", documents)]:
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        make(folder, count, rng)
        print(f"wrote {count} photos to {folder}")


if __name__ == "__main__":
    main()

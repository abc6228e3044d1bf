"""The Python package against the `wardrobe` command, alternating in one sitting: training img/s
of the same recipe (seed preset, one epoch on the full training set), inference img/s on the
10,000 test images, and the median time of one single-image `predict` call against `wardrobe
bench`'s single-image latency.

    python bench/python/compare.py [--wardrobe target/release/wardrobe] [--rounds 3]
"""

import argparse
import json
import statistics
import subprocess
import tempfile
import time

import numpy as np

import wardrobe


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--wardrobe", default="target/release/wardrobe")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    (x, y), (xt, _) = wardrobe.datasets.fashion_mnist.load_data()
    rows = []
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([args.wardrobe, "train", "--epochs", "1", "--out", out], check=True, capture_output=True)
            with open(f"{out}/history.json") as f:
                cli_fit = json.load(f)[0]["images_per_second"]
        model = wardrobe.Model.preset("seed")
        py_fit = model.fit(x, y, epochs=1, verbose=0).history["images_per_second"][0]
        bench = json.loads(subprocess.run([args.wardrobe, "bench", "--json"], check=True, capture_output=True).stdout)
        best = min(_timed(lambda: model.predict(xt)) for _ in range(5))
        calls = []
        for i in range(2000):
            one = xt[i % len(xt)][None]
            start = time.perf_counter()
            model.predict(one)
            calls.append(time.perf_counter() - start)
        row = {
            "round": round_ + 1,
            "fit_img_s": (py_fit, cli_fit, py_fit / cli_fit),
            "predict_img_s": (len(xt) / best, bench["inference_images_per_second"], len(xt) / best / bench["inference_images_per_second"]),
            "one_image_ms_median": (1e3 * statistics.median(calls), bench["latency_ms_median"]),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)


def _timed(f):
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()

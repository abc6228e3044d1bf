"""Trains the notebook's seed CNN in Keras on real Fashion-MNIST (briefly) and exports it with
Keras' own ONNX export; prints Keras' test accuracy as JSON. The model takes 0-255 pixels
([N,28,28,1] float) and rescales them itself, as a deployable Keras model does.

usage: keras_seed_onnx.py OUT.onnx [--train N] [--epochs E]
"""
import argparse
import gzip
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import keras  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"


def load(prefix):
    with gzip.open(f"{DATA}/{prefix}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1).astype(np.float32)
    with gzip.open(f"{DATA}/{prefix}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return x, y


parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--train", type=int, default=60000)
parser.add_argument("--epochs", type=int, default=10)
args = parser.parse_args()
keras.utils.set_random_seed(1)
(x, y), (tx, ty) = load("train"), load("t10k")
model = keras.Sequential([
    keras.Input((28, 28, 1)),
    keras.layers.Rescaling(1 / 255),
    keras.layers.Conv2D(32, 5, activation="relu"),
    keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(64, 3, activation="relu"),
    keras.layers.MaxPooling2D(2),
    keras.layers.Flatten(),
    keras.layers.Dropout(0.25),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.Dropout(0.5),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x[: args.train], y[: args.train], batch_size=64, epochs=args.epochs, verbose=0)
probs = model.predict(tx, batch_size=1000, verbose=0)
model.export(args.out, format="onnx", verbose=False)
print(json.dumps({"accuracy": float((probs.argmax(1) == ty).mean()), "probabilities_head": probs[:3].tolist()}))

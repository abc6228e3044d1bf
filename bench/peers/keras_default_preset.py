#!/usr/bin/env python3
"""Peer for the accuracy-per-minute table: wardrobe's default preset (architecture and recipe)
in TensorFlow/Keras on the same cores, for the same minutes of wall time.

Architecture: two blocks of [3x3 same conv -> batch norm -> ReLU] x 2 -> 2x2 max pool -> dropout
0.1 (32 then 64 filters), flatten, dense 256 -> batch norm -> ReLU -> dropout 0.3, dense 10.
Recipe: Adam with half an epoch of linear warm-up to 4e-3, then a cosine decay to 0 at the end of
the run, batch 64, horizontal flips, label smoothing 0.1, 5% of the training images held out.
Keras gets the same wall time: after the first epoch the schedule is set to end with the last
epoch that fits in --minutes.

Prints ONE JSON object on its last stdout line (epochs, minutes, test accuracy).

    python keras_default_preset.py --minutes 10     (tensorflow-cpu 2.21)
"""
import time

T_START = time.perf_counter()

import argparse
import gzip
import json
import math
import os

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"


def load(prefix, data_dir):
    with gzip.open(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"), "rb") as f:
        x = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"), "rb") as f:
        y = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    return x.astype(np.float32) / 255.0, y.astype(np.int64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=DATA_DIR)
    args = ap.parse_args()

    import tensorflow as tf
    import keras

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(args.seed)

    x, y = load("train", args.data_dir)
    x_test, y_test = load("t10k", args.data_dir)
    held = int(round(len(x) * 0.05))
    x_train, y_train = x[:-held], keras.utils.to_categorical(y[:-held], 10)
    x_val, y_val = x[-held:], keras.utils.to_categorical(y[-held:], 10)

    def block(filters):
        return [
            keras.layers.Conv2D(filters, 3, padding="same", use_bias=True, kernel_initializer="he_normal"),
            keras.layers.BatchNormalization(momentum=0.99),
            keras.layers.ReLU(),
        ]

    layers = [keras.Input(shape=(28, 28, 1)), keras.layers.RandomFlip("horizontal")]
    for filters in (32, 64):
        layers += block(filters) + block(filters) + [keras.layers.MaxPool2D(2), keras.layers.Dropout(0.1)]
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dense(256, kernel_initializer="he_normal"),
        keras.layers.BatchNormalization(momentum=0.99),
        keras.layers.ReLU(),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(10),
    ]
    model = keras.Sequential(layers)
    base_lr, batch = 4e-3, 64
    steps_per_epoch = math.ceil(len(x_train) / batch)
    warmup = steps_per_epoch / 2
    optimizer = keras.optimizers.Adam(base_lr)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
        metrics=["accuracy"],
    )

    class Budget(keras.callbacks.Callback):
        """Warm-up, then a cosine decay over the epochs that fit in the budget (known after the
        first epoch); stops training once they have run."""

        def __init__(self):
            super().__init__()
            self.step, self.total_steps, self.epochs = 0, None, None
            self.t0 = time.perf_counter()

        def on_train_batch_begin(self, batch, logs=None):
            if self.step < warmup:
                lr = base_lr * self.step / warmup
            else:
                total = (self.total_steps or steps_per_epoch * 1000) - warmup
                lr = base_lr * 0.5 * (1 + math.cos(math.pi * min((self.step - warmup) / total, 1.0)))
            optimizer.learning_rate.assign(lr)
            self.step += 1

        def on_epoch_end(self, epoch, logs=None):
            if self.epochs is None:
                spent = time.perf_counter() - T_START
                per_epoch = time.perf_counter() - self.t0
                self.epochs = max(1, int((args.minutes * 60 - (spent - per_epoch)) // per_epoch))
                self.total_steps = self.epochs * steps_per_epoch
            if epoch + 1 >= self.epochs:
                self.model.stop_training = True

    budget = Budget()
    model.fit(x_train, y_train, batch_size=batch, epochs=1000, validation_data=(x_val, y_val),
              callbacks=[budget], verbose=2)
    _, accuracy = model.evaluate(x_test, keras.utils.to_categorical(y_test, 10), batch_size=1000, verbose=0)
    print(json.dumps({
        "peer": f"keras {keras.__version__} / tensorflow {tf.__version__}",
        "epochs": budget.epochs,
        "minutes": round((time.perf_counter() - T_START) / 60, 2),
        "test_accuracy": round(float(accuracy), 4),
        "seed": args.seed,
    }))


if __name__ == "__main__":
    main()

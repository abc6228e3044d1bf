"""The Python package on real Fashion-MNIST: every call of its API, the same weights as the CLI,
Ctrl-C in fit, the GIL released, and the scikit-learn estimator in cross-validation and cleanlab.

``WARDROBE_BIN`` names the ``wardrobe`` binary the comparisons with the CLI run."""

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import zlib

import numpy as np
import pytest

import wardrobe

BIN = os.environ.get("WARDROBE_BIN", "wardrobe")


@pytest.fixture(scope="session")
def data():
    return wardrobe.datasets.fashion_mnist.load_data()


@pytest.fixture(scope="session")
def trained(data, tmp_path_factory):
    """The seed preset trained for 2 epochs on 3,000 images, and saved."""
    (x, y), _ = data
    model = wardrobe.Model.preset("seed")
    history = model.fit(x[:3000], y[:3000], epochs=2, seed=1, verbose=0)
    directory = tmp_path_factory.mktemp("trained") / "run"
    model.save(directory)
    return model, history, directory


def cli(*args):
    done = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def png(path, image):
    """Writes a grey uint8 image [H, W] as a PNG file."""
    h, w = image.shape
    raw = b"".join(b"\x00" + image[r].tobytes() for r in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_load_data_is_shaped_as_keras_gives_it(data):
    (x, y), (xt, yt) = data
    assert (x.shape, y.shape, xt.shape, yt.shape) == ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
    assert x.dtype == np.uint8 and y.dtype == np.uint8
    assert y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5], "Fashion-MNIST's first training labels"
    assert np.bincount(yt).tolist() == [1000] * 10
    with pytest.raises(OSError, match="dataset-fashion-mnist"):
        wardrobe.datasets.fashion_mnist.load_data("/nonexistent")


def test_fit_returns_a_keras_history_and_learns(trained, data):
    model, history, _ = trained
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert history.epoch == [0, 1] and all(len(v) == 2 for v in history.history.values())
    assert history.history["loss"][1] < history.history["loss"][0]
    assert history.history["val_accuracy"][1] > 0.6
    _, (xt, yt) = data
    scores = model.evaluate(xt, yt)
    assert set(scores) == {"loss", "accuracy", "ece"}
    assert scores["accuracy"] > 0.7 and 0 <= scores["ece"] < 0.2
    assert model.classes[0] == "T-shirt/top" and len(model.classes) == 10
    assert model.input_shape == (28, 28, 1) and model.unknown_above is not None


def test_same_seed_same_weights_as_the_cli(data, tmp_path):
    (x, y), _ = data
    csv = tmp_path / "train.csv"
    with open(csv, "w") as f:
        f.write("label," + ",".join(f"pixel{i + 1}" for i in range(784)) + "\n")
        for i in range(2000):
            f.write(f"{y[i]}," + ",".join(map(str, x[i].ravel())) + "\n")
    cli("train", "--preset", "default", "--train-csv", csv, "--epochs", "1", "--seed", "3", "--out", tmp_path / "cli")
    model = wardrobe.Model.preset("default")
    model.fit(x[:2000], y[:2000], epochs=1, seed=3, verbose=0)
    model.save(tmp_path / "py")
    same = (tmp_path / "cli" / "model.safetensors").read_bytes() == (tmp_path / "py" / "model.safetensors").read_bytes()
    assert same, "fit + save must write the bytes wardrobe train writes"


def test_a_model_saved_in_python_evaluates_identically_in_the_cli(trained, data):
    model, _, directory = trained
    _, (xt, yt) = data
    printed = json.loads(cli("evaluate", "--model", directory, "--json"))
    mine = model.evaluate(xt, yt)
    assert printed["accuracy"] == mine["accuracy"]
    # The CLI rescales uncalibrated probabilities by the temperature, predict applies it in the
    # softmax: the same up to float rounding.
    assert abs(printed["loss"] - mine["loss"]) < 1e-6
    loaded = wardrobe.load(directory)
    assert np.array_equal(loaded.predict(xt[:500]), model.predict(xt[:500]))
    assert loaded.classes == model.classes and loaded.temperature == model.temperature


def test_predict_takes_uint8_or_float_images_with_or_without_channels(trained, data):
    model, _, _ = trained
    _, (xt, _) = data
    probs = model.predict(xt[:64])
    assert probs.shape == (64, 10) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(model.predict(xt[:64].astype(np.float32) / 255), probs)
    assert np.array_equal(model.predict(xt[:64, :, :, None]), probs)
    assert np.array_equal(model.predict(np.asfortranarray(xt[:64])), probs), "a non-contiguous array is copied"
    # One image takes the single-image path: sums in another order, the same to float rounding.
    assert np.allclose(model.predict(xt[5:6]), probs[5:6], rtol=1e-5, atol=1e-7)


def test_wrong_inputs_raise_value_error_with_the_cli_message(trained, data, tmp_path):
    model, _, directory = trained
    (x, y), _ = data
    with pytest.raises(ValueError, match=r"the model takes 28×28×1 images, x gives 32×32×1"):
        model.predict(np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="dtype int32"):
        model.predict(np.zeros((2, 28, 28), np.int32))
    with pytest.raises(ValueError, match="must be in 0–1"):
        model.predict(np.full((2, 28, 28), 255.0, np.float32))
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        model.predict(np.zeros((28, 28), np.uint8))
    with pytest.raises(ValueError, match="label 12 at index 0 is not a class 0–9"):
        wardrobe.Model.preset("seed").fit(x[:10], np.full(10, 12), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="unknown training setting 'learning_rate'"):
        wardrobe.Model.preset("seed").fit(x[:100], y[:100], learning_rate=0.1, verbose=0)
    with pytest.raises(ValueError, match="schedule 'sometimes': expected constant"):
        wardrobe.Model.preset("seed").fit(x[:100], y[:100], schedule="sometimes", verbose=0)
    with pytest.raises(ValueError, match="no such directory, so no model.json"):
        wardrobe.load(tmp_path / "nothing")


def test_verbose_prints_one_keras_line_per_epoch(data, capsys):
    (x, y), _ = data
    wardrobe.Model.preset("seed").fit(x[:640], y[:640], epochs=2, verbose=1, lr=2e-3)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("Epoch ")]
    assert [l.split(" - ")[0] for l in lines] == ["Epoch 1/2", "Epoch 2/2"]
    assert all("val_accuracy: " in l for l in lines)
    wardrobe.Model.preset("seed").fit(x[:640], y[:640], epochs=1, verbose=0)
    assert "Epoch" not in capsys.readouterr().out


def test_predict_photos_labels_files_as_the_cli_does(trained, data, tmp_path):
    model, _, directory = trained
    _, (xt, yt) = data
    paths = []
    for i in range(20):
        paths.append(tmp_path / f"item{i:02}.png")
        # A seller's photo: the item 4× larger, dark on a white page.
        png(paths[-1], np.pad(255 - np.kron(xt[i], np.ones((4, 4), np.uint8)), 16, constant_values=255))
    rows = model.predict_photos(paths)
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    assert {r["verdict"] for r in rows} <= {"label", "review", "unknown"}
    assert all(r["needs_review"] == (r["verdict"] != "label") for r in rows)
    assert sum(r["label"] == model.classes[t] for r, t in zip(rows, yt)) >= 12
    cli("label", "--model", directory, tmp_path, "--out", tmp_path / "labels.jsonl")
    by_path = {}
    for line in (tmp_path / "labels.jsonl").read_text().splitlines():
        row = json.loads(line)
        by_path[row["path"]] = row
    for r in rows:
        theirs = by_path[r["path"]]
        assert (r["label"], r["verdict"]) == (theirs["label"], theirs["verdict"])
        assert abs(r["confidence"] - theirs["confidence"]) < 1e-6
    with pytest.raises(OSError, match="missing.png"):
        model.predict_photos([tmp_path / "missing.png"])


def test_from_spec_and_to_onnx(trained, data, tmp_path):
    model, _, directory = trained
    (x, y), (xt, _) = data
    spec = json.loads((directory / "model.json").read_text())["spec"]
    again = wardrobe.Model.from_spec(spec, classes=model.classes)
    assert again.summary() == model.summary()
    again.fit(x[:640], y[:640], epochs=1, verbose=0)
    assert again.predict(xt[:8]).shape == (8, 10)
    model.to_onnx(tmp_path / "m.onnx")
    onnx_bytes = (tmp_path / "m.onnx").read_bytes()
    assert b"probabilities" in onnx_bytes and b"ood_score" in onnx_bytes


def test_fit_twice_continues_from_the_trained_weights(data):
    (x, y), (xt, yt) = data
    model = wardrobe.Model.preset("seed")
    model.fit(x[:1000], y[:1000], epochs=1, verbose=0)
    first = model.evaluate(xt[:2000], yt[:2000])["accuracy"]
    model.fit(x[1000:4000], y[1000:4000], epochs=2, verbose=0)
    assert model.evaluate(xt[:2000], yt[:2000])["accuracy"] > first


def test_ctrl_c_stops_fit_and_fit_again_continues_to_the_same_weights(tmp_path):
    script = textwrap.dedent(
        """
        import sys, wardrobe
        (x, y), _ = wardrobe.datasets.fashion_mnist.load_data()
        model = wardrobe.Model.preset("seed")
        try:
            model.fit(x[:6000], y[:6000], epochs=3, checkpoint_dir=sys.argv[1], verbose=1)
        except KeyboardInterrupt as e:
            print("INTERRUPTED", e, flush=True)
            sys.exit(3)
        model.save(sys.argv[2])
        """
    )
    run = [sys.executable, "-c", script]
    child = subprocess.Popen([*run, tmp_path / "ck", tmp_path / "a"], stdout=subprocess.PIPE, text=True)
    first = child.stdout.readline()
    assert first.startswith("Epoch 1/3"), first
    child.send_signal(signal.SIGINT)
    rest = child.stdout.read()
    assert child.wait(timeout=120) == 3, rest
    assert "checkpoint saved" in rest and (tmp_path / "ck" / "checkpoint").is_dir()
    for out, ck in [(tmp_path / "a", tmp_path / "ck"), (tmp_path / "b", tmp_path / "straight")]:
        done = subprocess.run([*run, ck, out], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr + done.stdout
    same = (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert same, "an interrupted and continued fit ends with the weights of an uninterrupted one"


def test_predict_releases_the_gil(trained, data):
    model, _, _ = trained
    _, (xt, _) = data
    big = np.ascontiguousarray(np.concatenate([xt] * 5))
    done = threading.Event()
    worker = threading.Thread(target=lambda: (model.predict(big), done.set()))
    ticks = 0
    worker.start()
    while not done.is_set():
        ticks += 1
    worker.join()
    assert ticks > 1000, f"the main thread ran only {ticks} times while predict computed"


def test_classifier_in_cross_validation_grid_search_and_cleanlab(data):
    from cleanlab.filter import find_label_issues
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, cross_val_predict, cross_val_score

    (x, y), _ = data
    X = x[:1500].reshape(1500, -1)
    labels = y[:1500].astype(np.int64)
    clf = wardrobe.WardrobeClassifier(preset="seed", epochs=2, seed=1)
    assert clone(clf).get_params() == clf.get_params()
    scores = cross_val_score(clf, X, labels, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.6, scores
    grid = GridSearchCV(clf, {"epochs": [1, 3]}, cv=2).fit(X, labels)
    assert grid.best_params_ == {"epochs": 3}
    assert grid.predict(X[:10]).shape == (10,)
    # Noisy labels: 40 flipped to another class are found by cleanlab from out-of-fold probabilities.
    rng = np.random.default_rng(0)
    flipped = rng.choice(1500, 40, replace=False)
    noisy = labels.copy()
    noisy[flipped] = (noisy[flipped] + rng.integers(1, 10, 40)) % 10
    probs = cross_val_predict(clf, X, noisy, cv=3, method="predict_proba")
    assert probs.shape == (1500, 10)
    issues = np.flatnonzero(find_label_issues(noisy, probs))
    found = len(set(issues) & set(flipped))
    assert found >= 25, f"cleanlab found {found} of the 40 flipped labels among {len(issues)} issues"
    # String labels and image-shaped input work too.
    names = np.array(["top", "bottom"])[(labels[:300] == 1).astype(int)]
    clf2 = wardrobe.WardrobeClassifier(epochs=1).fit(x[:300], names)
    assert list(clf2.classes_) == ["bottom", "top"] and set(clf2.predict(x[:20])) <= {"bottom", "top"}


def test_classifier_passes_scikit_learns_api_checks():
    from sklearn.utils import estimator_checks as checks

    clf = wardrobe.WardrobeClassifier(epochs=1)
    name = type(clf).__name__
    # The API contract: constructor, parameters, cloning and refusing to predict unfitted. The data
    # checks of check_estimator feed a handful of random features, which no image model takes.
    for check in [
        checks.check_no_attributes_set_in_init,
        checks.check_parameters_default_constructible,
        checks.check_get_params_invariance,
        checks.check_set_params,
        checks.check_estimators_unfitted,
        checks.check_estimator_repr,
    ]:
        check(name, clf)


def test_the_suite_runs_the_installed_package_with_its_stubs():
    package = os.path.dirname(wardrobe.__file__)
    assert "site-packages" in package, wardrobe.__file__
    for name in ["py.typed", "_native.pyi", "sklearn.py"]:
        assert os.path.exists(os.path.join(package, name)), name


def test_the_example_notebook_runs_end_to_end(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "notebook", "fashion_mnist.ipynb")
    notebook = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), "outputs are not committed"
    monkeypatch.setenv("WARDROBE_NOTEBOOK_IMAGES", "6000")
    monkeypatch.setenv("WARDROBE_NOTEBOOK_EPOCHS", "2")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "Epoch 2/2" in printed and "accuracy" in printed
    assert (tmp_path / "runs" / "notebook" / "model.safetensors").is_file()
    assert (tmp_path / "upload.png").is_file()


def test_quantize_keeps_the_accuracy_and_saves_for_the_cli(trained, data, tmp_path):
    (x, y), (xt, yt) = data
    model = wardrobe.load(trained[2])
    before = model.evaluate(xt[:2000], yt[:2000])["accuracy"]
    float_probs = model.predict(xt[:5])
    model.quantize(x, calibration=500)
    assert model.quantized
    after = model.evaluate(xt[:2000], yt[:2000])["accuracy"]
    assert abs(after - before) <= 0.005, (before, after)
    assert not np.array_equal(model.predict(xt[:5]), float_probs)
    np.testing.assert_array_equal(model.predict(xt[:1]), model.predict(xt[:5])[:1])
    model.save(tmp_path / "int8")
    spec = json.loads((tmp_path / "int8" / "model.json").read_text())
    assert spec["int8"]["calibration_images"] == 500
    np.testing.assert_array_equal(wardrobe.load(tmp_path / "int8").predict(xt[:5]), model.predict(xt[:5]))
    model.fit(x[:640], y[:640], epochs=1, verbose=0)
    assert not model.quantized, "training drops the int8 form made from the old weights"

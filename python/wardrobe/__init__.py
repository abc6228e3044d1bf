"""wardrobe: a clothing-photo classifier on its own CPU engine, from Python.

Keras-style models (``Model.preset(...).fit(x, y)`` returns a ``History``), the Fashion-MNIST data
set as numpy arrays, and a scikit-learn estimator (``WardrobeClassifier``). Everything runs in
the Rust library the ``wardrobe`` command uses: a model saved here is a run directory the CLI
reads, and the same seed gives the same weights from either.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native, datasets

__all__ = ["Model", "History", "load", "datasets", "WardrobeClassifier", "SETTINGS"]

#: The training settings ``Model.fit`` takes as keywords (``train``'s flags, ``-`` written ``_``).
SETTINGS: List[str] = list(_native.SETTINGS)

PathLike = Union[str, "os.PathLike[str]"]


class History:
    """What ``Model.fit`` returns, as Keras' ``History``: ``history`` maps ``loss``,
    ``accuracy``, ``val_loss``, ``val_accuracy`` and ``lr`` (and ``seconds``,
    ``images_per_second``) to one value per epoch; ``epoch`` lists the epochs (from 0)."""

    def __init__(self, history: Dict[str, List[float]], params: Dict[str, Any]) -> None:
        self.history = history
        self.params = params
        self.epoch = list(range(len(history.get("loss", []))))

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Model:
    """A classifier: architecture, training recipe, weights and class names.

    Make one with ``Model.preset`` or ``Model.from_spec``, or load a run directory with
    ``wardrobe.load``."""

    def __init__(self, native: "_native.Model") -> None:
        self._native = native

    @classmethod
    def preset(
        cls,
        name: str = "seed",
        input_shape: Tuple[int, int, int] = (28, 28, 1),
        classes: Union[int, Sequence[str]] = 10,
    ) -> "Model":
        """A named preset ("seed", "default" or "best") with its training recipe, for images of
        ``input_shape`` (H, W, C) and ``classes`` (a count, Fashion-MNIST's names for 10, or a
        list of names)."""
        return cls(_native.Model.preset(name, tuple(input_shape), classes))

    @classmethod
    def from_spec(
        cls, spec: Union[Dict[str, Any], PathLike], classes: Union[int, Sequence[str]] = 10
    ) -> "Model":
        """A model from a spec in ``model.json``'s format (a dict, a JSON file, or JSON text);
        a run spec (with ``training``) also sets the recipe."""
        if isinstance(spec, dict):
            text = json.dumps(spec)
        elif os.path.exists(os.fspath(spec)):
            with open(os.fspath(spec), encoding="utf-8") as f:
                text = f.read()
        else:
            text = os.fspath(spec)
        return cls(_native.Model.from_spec_json(text, classes))

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        epochs: Optional[int] = None,
        batch_size: Optional[int] = None,
        validation_split: Optional[float] = None,
        seed: Optional[int] = None,
        verbose: int = 1,
        checkpoint_dir: Optional[PathLike] = None,
        **settings: Any,
    ) -> History:
        """Trains on images ``x`` (uint8 0-255 or float 0-1, [N,H,W] or [N,H,W,C]) and class
        indices ``y``; the last ``validation_split`` of them are held out for validation and
        calibration. Unset arguments keep the recipe's values; any other setting of ``wardrobe
        train`` is a keyword (``lr=4e-3``, ``schedule="cosine:0.5"``, ``augment="flip"``,
        ``patience=3``; see ``wardrobe.SETTINGS``). ``verbose=1`` prints one line per epoch.
        Ctrl-C stops between two steps; with ``checkpoint_dir`` the run is saved there after every
        epoch and on interrupt, and ``fit`` with the same directory continues it."""
        given = {"epochs": epochs, "batch_size": batch_size, "seed": seed, **settings}
        text = {k: _setting_text(v) for k, v in given.items() if v is not None}
        directory = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        history = self._native.fit(x, y, text, validation_split, int(verbose), directory)
        params = {"epochs": len(history["loss"]), "recipe": self._native.recipe}
        return History(history, params)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> Dict[str, float]:
        """``{"loss", "accuracy", "ece"}`` of the calibrated probabilities on ``x``, ``y``."""
        return dict(self._native.evaluate(x, y))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities, float32 [N, K]."""
        return self._native.predict(x)

    def quantize(self, x: np.ndarray, calibration: int = 1000) -> None:
        """Gives the model its int8 form, as `wardrobe quantize` does: weights quantised per output
        channel, activation ranges measured on the first `calibration` images of `x` (training
        images, not the test set). `predict`, `save` and `to_onnx` then use it; `fit` trains the
        float weights again."""
        self._native.quantize(x, calibration)

    @property
    def quantized(self) -> bool:
        """Whether predictions run the int8 form."""
        return self._native.quantized

    def predict_photos(
        self,
        paths: Sequence[PathLike],
        review_below: float = 0.6,
        unknown_above: Optional[float] = None,
    ) -> List[Dict[str, Any]]:
        """Labels photo files as ``wardrobe label`` does: for each a dict of ``path``, ``label``,
        ``confidence``, ``top3`` (pairs of label and probability), ``verdict`` ("label",
        "review" or "unknown"), ``ood_score`` and ``needs_review``."""
        return self._native.predict_photos([os.fspath(p) for p in paths], review_below, unknown_above)

    @property
    def classes(self) -> List[str]:
        """Class names, in the order of ``predict``'s columns."""
        return self._native.classes

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        """The images the model takes, (H, W, C)."""
        return self._native.input_shape

    @property
    def recipe(self) -> str:
        """The training recipe as ``wardrobe train`` flags."""
        return self._native.recipe

    @property
    def temperature(self) -> float:
        """The calibration temperature (1 before training)."""
        return self._native.temperature

    @property
    def unknown_above(self) -> Optional[float]:
        """The out-of-distribution score above which a photo is unknown (None before training)."""
        return self._native.unknown_above

    def summary(self) -> str:
        """The layers, their output shapes and parameter counts."""
        return self._native.summary()

    def save(self, directory: PathLike) -> None:
        """Writes the model as a run directory (``model.json`` + ``model.safetensors``) that the
        ``wardrobe`` command reads."""
        self._native.save(os.fspath(directory))

    def to_onnx(self, path: PathLike) -> None:
        """Exports the model as ONNX (``probabilities``, and ``ood_score`` once trained)."""
        self._native.to_onnx(os.fspath(path))

    def __repr__(self) -> str:
        return f"wardrobe.Model(input_shape={self.input_shape}, classes={len(self.classes)})"


def load(directory: PathLike) -> Model:
    """The model in a run directory written by ``wardrobe train`` or ``Model.save``."""
    return Model(_native.Model.load(os.fspath(directory)))


def __getattr__(name: str) -> Any:
    # The scikit-learn estimator imports scikit-learn only when asked for.
    if name == "WardrobeClassifier":
        from .sklearn import WardrobeClassifier

        return WardrobeClassifier
    raise AttributeError(f"module 'wardrobe' has no attribute {name!r}")

"""``WardrobeClassifier``: a wardrobe model as a scikit-learn estimator, so it works in
``cross_val_score``, ``GridSearchCV``, ``cross_val_predict`` and tools built on them (cleanlab's
``find_label_issues``)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from . import Model


class WardrobeClassifier(ClassifierMixin, BaseEstimator):
    """A wardrobe preset trained by ``fit(X, y)``.

    ``X`` is scikit-learn's 2-D ``[N, H*W*C]`` (reshaped by ``input_shape``) or image-shaped
    ``[N, H, W]`` / ``[N, H, W, C]``, uint8 0-255 or float 0-1; ``y`` holds any class labels
    (``classes_`` is their sorted set). ``epochs``, ``batch_size``, ``validation_split`` and
    ``seed`` as in ``Model.fit`` (None keeps the preset's); ``settings`` is a dict of further
    training settings (``{"lr": 4e-3}``)."""

    def __init__(
        self,
        preset: str = "seed",
        epochs: Optional[int] = None,
        batch_size: Optional[int] = None,
        validation_split: Optional[float] = None,
        seed: int = 1,
        input_shape: Tuple[int, int, int] = (28, 28, 1),
        settings: Optional[Dict[str, Any]] = None,
        verbose: int = 0,
    ) -> None:
        self.preset = preset
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_split = validation_split
        self.seed = seed
        self.input_shape = input_shape
        self.settings = settings
        self.verbose = verbose

    def _images(self, X: Any) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim == 2:
            h, w, c = self.input_shape
            if X.shape[1] != h * w * c:
                raise ValueError(
                    f"X has {X.shape[1]} features per row; input_shape {tuple(self.input_shape)} "
                    f"needs {h * w * c}"
                )
            X = X.reshape(X.shape[0], h, w, c)
        if X.dtype != np.uint8 and X.dtype.kind != "f":
            raise ValueError(f"X: expected uint8 (0-255) or float (0-1) pixels, got dtype {X.dtype}")
        return np.ascontiguousarray(X)

    def fit(self, X: Any, y: Any) -> "WardrobeClassifier":
        """Trains a fresh model on ``X``, ``y``."""
        images = self._images(X)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(images):
            raise ValueError(f"y: expected {len(images)} labels in one dimension, got shape {y.shape}")
        self.classes_, indices = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("y: needs at least 2 classes")
        names = [str(c) for c in self.classes_]
        self.model_ = Model.preset(self.preset, input_shape=tuple(self.input_shape), classes=names)
        self.history_ = self.model_.fit(
            images,
            indices.astype(np.int64),
            epochs=self.epochs,
            batch_size=self.batch_size,
            validation_split=self.validation_split,
            seed=self.seed,
            verbose=self.verbose,
            **(self.settings or {}),
        )
        self.n_features_in_ = int(np.prod(images.shape[1:]))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated class probabilities [N, len(classes_)]."""
        check_is_fitted(self, "model_")
        return self.model_.predict(self._images(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

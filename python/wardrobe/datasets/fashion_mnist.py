"""Fashion-MNIST, read from the installed Debian package ``dataset-fashion-mnist``."""

from __future__ import annotations

import os
from typing import Optional, Tuple, Union

import numpy as np

from .. import _native

#: Where the Debian package installs the data set.
DEFAULT_PATH: str = _native.DEFAULT_DATA_DIR


def load_data(
    path: Optional[Union[str, "os.PathLike[str]"]] = None,
) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """``((x_train, y_train), (x_test, y_test))``: uint8 images [N, 28, 28] and uint8 labels
    [N], exactly as ``keras.datasets.fashion_mnist.load_data()``, read from ``path`` (default:
    the Debian package's directory). Raises ``OSError`` naming the package when it is missing."""
    directory = None if path is None else os.fspath(path)
    (x_train, y_train), (x_test, y_test) = _native.load_fashion_mnist(directory)
    return (x_train, y_train), (x_test, y_test)

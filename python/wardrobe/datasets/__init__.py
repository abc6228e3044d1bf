"""Data sets as numpy arrays, shaped as ``keras.datasets`` gives them."""

from . import fashion_mnist

__all__ = ["fashion_mnist"]

"""The nudity head of nsfwjs: dense 1280 -> 256 (relu) -> 128 (relu) -> 5 (softmax), in numpy.

It runs on stored features, so the server never needs TensorFlow for it. Dropout layers of
the shipped model are inactive at inference and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.ml.nsfwjs import CLASS_NAMES, HEAD_LAYERS, NsfwjsModel

WEIGHTS_FILE = "nsfw_head.npz"


@dataclass(frozen=True)
class NsfwHead:
    """Weights of the three dense layers, (kernel, bias) each."""

    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    class_names: tuple[str, ...] = CLASS_NAMES

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities float32[N, 5] for features float32[N, 1280]."""
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.layers[0][0].shape[0]:
            raise ValueError(f"expected features of shape (N, {self.layers[0][0].shape[0]}), got {x.shape}")
        for index, (kernel, bias) in enumerate(self.layers):
            x = x @ kernel + bias
            if index < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return softmax(x)

    def save(self, path: Path) -> None:
        arrays = {}
        for index, (kernel, bias) in enumerate(self.layers):
            arrays[f"kernel_{index}"] = kernel
            arrays[f"bias_{index}"] = bias
        with open(path, "wb") as handle:
            np.savez(handle, class_names=np.array(self.class_names), **arrays)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def head_from_nsfwjs(model: NsfwjsModel) -> NsfwHead:
    layers = tuple((model.weights[f"{name}/kernel"], model.weights[f"{name}/bias"]) for name in HEAD_LAYERS)
    return NsfwHead(layers=layers)


def load_nsfw_head(path: Path) -> NsfwHead:
    with np.load(path) as data:
        count = sum(1 for key in data.files if key.startswith("kernel_"))
        layers = tuple((data[f"kernel_{i}"], data[f"bias_{i}"]) for i in range(count))
        class_names = tuple(str(name) for name in data["class_names"])
    return NsfwHead(layers=layers, class_names=class_names)

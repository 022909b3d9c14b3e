"""The CNN chunk on the server: Keras 3 MobileNetV2 up to the pooled 1280-d feature vector.

This is the source of truth for what a feature is; the browser gets an exported copy
(``export.py``). Preprocessing is nsfwjs's own: RGB scaled to [0, 1], then
``resizeBilinear(x, [224, 224], alignCorners=true)``. TensorFlow is imported inside the
functions so that importing this module (e.g. from a web process) costs nothing.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

INPUT_SIZE = 224
FEATURE_SIZE = 1280
BATCH_SIZE = 32
WEIGHTS_FILE = "cnn.weights.h5"
# The same function as a float32 TFLite flatbuffer at batch 1 (``export.tflite_flatbuffer``): the server's runtime.
TFLITE_FILE = "cnn.tflite"
INPUT_LAYER = "input"
FEATURE_LAYER = "features"
PREPROCESSING = {
    "input_size": INPUT_SIZE,
    "scale": "divide_255",
    "resize": "bilinear_align_corners",
    "colour": "browser_rgb",
}

# Keras 3 names a depthwise convolution's weight "kernel"; Keras 2 and TF.js say "depthwise_kernel".
_TFJS_WEIGHT_NAMES = {("DepthwiseConv2D", "kernel"): "depthwise_kernel"}


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_feature_extractor() -> keras.Model:
    """MobileNetV2 (alpha 1.0, 224x224x3) with global average pooling, untrained weights.

    Every layer is named explicitly: Keras numbers auto-named layers per process
    (``..._1`` for the second model), which would change the exported topology and its hash.
    """
    _quiet_tensorflow()
    import keras

    inputs = keras.Input(shape=(INPUT_SIZE, INPUT_SIZE, 3), name=INPUT_LAYER)
    backbone = keras.applications.MobileNetV2(weights=None, include_top=False, input_tensor=inputs)
    features = keras.layers.GlobalAveragePooling2D(name=FEATURE_LAYER)(backbone.output)
    return keras.Model(inputs, features, name="hydra_cnn")


def tfjs_weight_name(layer: keras.layers.Layer, variable: keras.Variable) -> str:
    """The TF.js / Keras 2 name of a Keras 3 weight, e.g. ``block_1_depthwise/depthwise_kernel``."""
    short = _TFJS_WEIGHT_NAMES.get((type(layer).__name__, variable.name), variable.name)
    return f"{layer.name}/{short}"


def weight_items(model: keras.Model) -> list[tuple[str, keras.Variable]]:
    """Every weight of the model with its TF.js name, in layer order."""
    return [(tfjs_weight_name(layer, variable), variable) for layer in model.layers for variable in layer.weights]


def assign_weights(model: keras.Model, weights: dict[str, np.ndarray]) -> None:
    """Set every weight of ``model`` from ``weights`` keyed by TF.js name; extra entries are ignored."""
    missing = [name for name, _ in weight_items(model) if name not in weights]
    if missing:
        raise ValueError(f"no weights for {len(missing)} tensors, e.g. {missing[:3]}")
    for name, variable in weight_items(model):
        value = weights[name]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"{name}: shape {value.shape} does not fit {tuple(variable.shape)}")
        variable.assign(value)


def load_feature_extractor(artefact_dir: Path) -> keras.Model:
    model = build_feature_extractor()
    model.load_weights(Path(artefact_dir) / WEIGHTS_FILE)
    return model


# Keras traces a new graph for each new batch shape until it generalises the batch dimension,
# after two shapes; each trace cost about 1.5 s of CPU here, paid by whichever small recomputation
# first used a new batch size. Two warm-up batches pay it when the model loads.
WARM_UP_BATCH_SIZES = (1, 2)


@functools.lru_cache(maxsize=2)
def cached_feature_extractor(artefact_dir: str) -> keras.Model:
    """One loaded model per artefact directory per process (building it takes seconds), ready for any batch size."""
    model = load_feature_extractor(Path(artefact_dir))
    for size in WARM_UP_BATCH_SIZES:
        model.predict_on_batch(np.zeros((size, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32))
    return model


def preprocess(frames_rgb: np.ndarray):
    """uint8[N, H, W, 3] -> float32 tensor [N, 224, 224, 3], as nsfwjs does it in the browser."""
    _quiet_tensorflow()
    import tensorflow as tf

    frames = np.asarray(frames_rgb)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames of shape (N, H, W, 3), got {frames.dtype} {frames.shape}")
    scaled = tf.cast(frames, tf.float32) / 255.0
    if frames.shape[1:3] == (INPUT_SIZE, INPUT_SIZE):
        return scaled
    return tf.raw_ops.ResizeBilinear(
        images=scaled, size=[INPUT_SIZE, INPUT_SIZE], align_corners=True, half_pixel_centers=False
    )


@dataclass(frozen=True)
class ResizeTaps:
    """Where ``preprocess``'s resize reads one axis of a frame: TensorFlow's legacy align-corners scaler.

    ``needed`` lists the distinct inputs read, in order; output pixel ``i`` blends inputs
    ``needed[lower_at[i]]`` and ``needed[upper_at[i]]`` by ``lerp[i]``, positions computed in
    float32 as ``resize_bilinear_op.cc`` does.
    """

    needed: np.ndarray
    lower_at: np.ndarray
    upper_at: np.ndarray
    lerp: np.ndarray


@functools.lru_cache(maxsize=64)
def resize_taps(in_size: int, out_size: int = INPUT_SIZE) -> ResizeTaps:
    """The taps of an axis of ``in_size`` pixels resized to ``out_size`` (cached: a few frame sizes per process)."""
    scale = np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1 else np.float32(0)
    position = np.arange(out_size, dtype=np.float32) * scale
    floor = np.floor(position)
    lower = np.maximum(floor.astype(np.intp), 0)
    upper = np.minimum(np.ceil(position).astype(np.intp), in_size - 1)
    needed = np.union1d(lower, upper)
    return ResizeTaps(
        needed=needed,
        lower_at=np.searchsorted(needed, lower),
        upper_at=np.searchsorted(needed, upper),
        lerp=(position - floor).astype(np.float32),
    )


def input_from_pixels(pixels: np.ndarray, rows: ResizeTaps, cols: ResizeTaps) -> np.ndarray:
    """float32[224, 224, 3], bit-identical to ``preprocess`` of the whole frame, from only the pixels it reads.

    ``pixels`` is uint8[len(rows.needed), len(cols.needed), 3]: the frame at ``np.ix_(rows.needed,
    cols.needed)``. Same float32 operations in the same order as TensorFlow (x / 255, then
    ``top_left + (top_right - top_left) * x_lerp`` per row pair and the same in y), so the same bits;
    the four corners are picked as uint8 before scaling (picking commutes with an elementwise op),
    which keeps the temporaries small. numpy instead of TensorFlow keeps a recomputation on one thread.
    """
    top, bottom = pixels[rows.lower_at], pixels[rows.upper_at]

    def corner(rows_of: np.ndarray, at: np.ndarray) -> np.ndarray:
        return rows_of[:, at].astype(np.float32) / np.float32(255.0)

    x_lerp = cols.lerp[None, :, None]
    top_left, bottom_left = corner(top, cols.lower_at), corner(bottom, cols.lower_at)
    upper = top_left + (corner(top, cols.upper_at) - top_left) * x_lerp
    lower = bottom_left + (corner(bottom, cols.upper_at) - bottom_left) * x_lerp
    return upper + (lower - upper) * rows.lerp[:, None, None]


def compute_features(model: keras.Model, frames_rgb: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """float32[N, 1280] features of uint8 RGB frames, computed ``batch_size`` frames at a time."""
    frames = np.asarray(frames_rgb)
    if len(frames) == 0:
        return np.zeros((0, FEATURE_SIZE), dtype=np.float32)
    return np.concatenate(
        [
            features_of_inputs(model, preprocess(frames[start : start + batch_size]), batch_size)
            for start in range(0, len(frames), batch_size)
        ]
    )


def features_of_inputs(model: keras.Model, inputs, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """float32[N, 1280] features of preprocessed inputs (float32[N, 224, 224, 3])."""
    if len(inputs) == 0:
        return np.zeros((0, FEATURE_SIZE), dtype=np.float32)
    # predict_on_batch runs a compiled graph: about 9x faster than an eager call at batch 1.
    return np.concatenate(
        [
            np.asarray(model.predict_on_batch(inputs[start : start + batch_size]), dtype=np.float32)
            for start in range(0, len(inputs), batch_size)
        ]
    )

"""Write a Keras 3 model as a TF.js 4.22 layers model (``model.json`` + uint8 weight shards).

Why this exists: the ``tensorflowjs`` converter cannot export Keras 3 models here (it needs
tf_keras, decision forests and jax), and TF.js 4.22 cannot read the Keras 3 JSON format.
TF.js does read the Keras 2 format that nsfwjs itself ships, so this module translates the
few layer types MobileNetV2 uses into Keras 2 layer configs and packs the weights the way
the TF.js converter does: one uint8 array per tensor with ``value = q * scale + min``.
Anything else raises ``ExportError`` instead of producing a model that loads but differs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from inference.ml.cnn import weight_items

if TYPE_CHECKING:
    import keras

MODEL_JSON = "model.json"
SHARD_BYTES = 4 * 1024 * 1024
KERAS_VERSION = "2.2.4"

# Which keys of each Keras 3 layer config carry meaning for TF.js; everything else
# (dtype policies, initialisers, regularisers, build configs) is left out.
_LAYER_KEYS = {
    "InputLayer": ("name", "dtype", "sparse"),
    "Conv2D": (
        "name",
        "trainable",
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "data_format",
        "dilation_rate",
        "activation",
        "use_bias",
    ),
    "DepthwiseConv2D": (
        "name",
        "trainable",
        "kernel_size",
        "strides",
        "padding",
        "depth_multiplier",
        "data_format",
        "dilation_rate",
        "activation",
        "use_bias",
    ),
    "BatchNormalization": ("name", "trainable", "axis", "momentum", "epsilon", "center", "scale"),
    "ReLU": ("name", "trainable", "max_value"),
    "ZeroPadding2D": ("name", "trainable", "padding", "data_format"),
    "Add": ("name", "trainable"),
    "GlobalAveragePooling2D": ("name", "trainable", "data_format"),
}


class ExportError(ValueError):
    """The model uses something this exporter cannot translate faithfully."""


@dataclass(frozen=True)
class BrowserExport:
    """The files written and the weights exactly as TF.js will see them after dequantisation."""

    files: tuple[str, ...]
    content_hash: str
    dequantised: dict[str, np.ndarray]


def quantise_weight(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """uint8 codes, scale and min of one tensor (affine over its own range, like the TF.js converter)."""
    values = np.asarray(values, dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    scale = (high - low) / 255.0 if high > low else 1.0
    codes = np.clip(np.round((values.astype(np.float64) - low) / scale), 0, 255).astype(np.uint8)
    return codes, scale, low


def dequantise_weight(codes: np.ndarray, scale: float, low: float) -> np.ndarray:
    """What TF.js computes when it loads a uint8 tensor: ``q * scale + min`` in doubles, stored as float32."""
    return (codes.astype(np.float64) * scale + low).astype(np.float32)


def keras2_topology(model: keras.Model) -> dict:
    """The Keras 2 ``modelTopology`` of a Keras 3 functional model, for ``tf.loadLayersModel``."""
    config = model.get_config()
    return {
        "keras_version": KERAS_VERSION,
        "backend": "tensorflow",
        "model_config": {
            "class_name": "Model",
            "config": {
                "name": config["name"],
                "layers": [_keras2_layer(layer) for layer in config["layers"]],
                "input_layers": _endpoints(config["input_layers"]),
                "output_layers": _endpoints(config["output_layers"]),
            },
        },
    }


def _keras2_layer(layer: dict) -> dict:
    class_name = layer["class_name"]
    keys = _LAYER_KEYS.get(class_name)
    if keys is None:
        raise ExportError(f"layer {layer['name']!r}: no TF.js translation for {class_name}")
    source = layer["config"]
    config = {key: source[key] for key in keys if key in source}
    if class_name == "InputLayer":
        config["batch_input_shape"] = source["batch_shape"]
        config["dtype"] = "float32"
    if class_name == "ReLU" and (source.get("negative_slope") or source.get("threshold")):
        raise ExportError(f"layer {layer['name']!r}: TF.js ReLU has no negative_slope or threshold")
    if class_name == "GlobalAveragePooling2D" and source.get("keepdims"):
        raise ExportError(f"layer {layer['name']!r}: keepdims is not supported")
    if isinstance(config.get("dtype"), dict):
        config["dtype"] = "float32"
    return {
        "name": layer["name"],
        "class_name": class_name,
        "config": config,
        "inbound_nodes": [_keras2_node(node) for node in layer["inbound_nodes"]],
    }


def _keras2_node(node: dict) -> list[list]:
    """Keras 3 ``{"args": [tensor or [tensors]]}`` -> Keras 2 ``[[layer, node, tensor, {}], ...]``."""
    tensors = []
    for arg in node["args"]:
        for tensor in arg if isinstance(arg, list) else [arg]:
            if not isinstance(tensor, dict) or tensor.get("class_name") != "__keras_tensor__":
                raise ExportError(f"unsupported layer call argument {tensor!r}")
            layer_name, node_index, tensor_index = tensor["config"]["keras_history"]
            tensors.append([layer_name, node_index, tensor_index, {}])
    return tensors


def _endpoints(value: list) -> list[list]:
    """Keras 3 writes a single endpoint as ``[name, 0, 0]``; Keras 2 always wants a list of them."""
    return [value] if value and isinstance(value[0], str) else value


def tflite_flatbuffer(model: keras.Model) -> bytes:
    """The Keras model as a float32 TFLite flatbuffer at batch 1, weights frozen in, no quantisation.

    The server's fastest path (TFLite/XNNPACK) and LiteRT.js in the browser run this one file, so both
    sides compute the function Keras defines. The batch is fixed at 1 because LiteRT.js rejects an input
    whose shape differs from the model's (a dynamic batch dimension reads as -1 there).
    """
    import keras
    import tensorflow as tf

    # Named, so that the bytes do not depend on how many Keras tensors the process numbered before.
    inputs = keras.Input(batch_shape=(1, *model.input_shape[1:]), name="frame")
    batch_one = keras.Model(inputs, model(inputs), name=f"{model.name}_batch_1")
    return tf.lite.TFLiteConverter.from_keras_model(batch_one).convert()


def content_hash(directory: Path, files: tuple[str, ...]) -> str:
    """sha256 of the browser files' bytes concatenated in order (model.json first, then the shards)."""
    digest = hashlib.sha256()
    for name in files:
        digest.update((Path(directory) / name).read_bytes())
    return digest.hexdigest()


def export_browser_model(model: keras.Model, directory: Path) -> BrowserExport:
    """Write ``model.json`` and ``group1-shardNofM.bin`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    specs, chunks, dequantised = [], [], {}
    for name, variable in weight_items(model):
        codes, scale, low = quantise_weight(np.asarray(variable.numpy()))
        specs.append(
            {
                "name": name,
                "shape": list(codes.shape),
                "dtype": "float32",
                "quantization": {"dtype": "uint8", "scale": scale, "min": low},
            }
        )
        chunks.append(codes.tobytes())
        dequantised[name] = dequantise_weight(codes, scale, low)
    data = b"".join(chunks)
    count = max(1, -(-len(data) // SHARD_BYTES))
    shard_names = [f"group1-shard{i + 1}of{count}.bin" for i in range(count)]
    for index, shard_name in enumerate(shard_names):
        (directory / shard_name).write_bytes(data[index * SHARD_BYTES : (index + 1) * SHARD_BYTES])
    model_json = {
        "format": "layers-model",
        "generatedBy": "hydra inference.ml.export",
        "convertedBy": None,
        "modelTopology": keras2_topology(model),
        "weightsManifest": [{"paths": shard_names, "weights": specs}],
    }
    (directory / MODEL_JSON).write_text(json.dumps(model_json, separators=(",", ":")))
    files = (MODEL_JSON, *shard_names)
    return BrowserExport(files=files, content_hash=content_hash(directory, files), dequantised=dequantised)

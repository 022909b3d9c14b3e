"""The second stage of nudity screening: nsfwjs's InceptionV3 (299x299), run by the server on flagged frames only.

The browser's MobileNetV2 head is the screen: cheap, on every sample. Measured on real harmless
footage it fires on one clip in five (docs/models.md), so the server confirms a flag with the larger
network that ``nsfwjs@4.4.0`` (MIT) also ships, before a case opens. It runs only on the frames the
screen flagged, so its cost (about 0.1-0.3 s of CPU per frame) is paid rarely.

The package ships the model as UMD modules (``dist/models/inception_v3/``): a Keras 2.2.4 topology
and six base64 shards of uint8-quantised weights. Node evaluates the modules; this file decodes the
weights like TF.js (``nsfwjs.dequantise_weights``), builds the same graph layer by layer in Keras 3
and assigns every weight by name. Preprocessing is nsfwjs's: RGB / 255, bilinear resize to 299 with
aligned corners. Keras is imported inside the functions.
"""

from __future__ import annotations

import base64
import functools
import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from inference.ml.frames import decode_frames_at
from inference.ml.nsfwjs import CLASS_NAMES, NsfwjsError, dequantise_weights

if TYPE_CHECKING:
    import keras

MODEL_SUBDIR = Path("dist") / "models" / "inception_v3"
INPUT_SIZE = 299
POSITIVE_CLASSES = ("porn", "hentai")

_DUMP_SCRIPT = """
const dir = process.argv[1];
const model = require(dir + "/model.min.js");
const shards = [];
for (let i = 1; i <= model.weightsManifest[0].paths.length; i++) {
  shards.push(require(dir + `/group1-shard${i}of${model.weightsManifest[0].paths.length}.min.js`));
}
process.stdout.write(JSON.stringify({topology: model.modelTopology, manifest: model.weightsManifest, shards: shards}));
"""


def read_inception_v3(package_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The shipped topology (Keras 2 JSON) and float32 weights keyed by TF.js name."""
    model_dir = (Path(package_dir) / MODEL_SUBDIR).resolve()
    if not (model_dir / "model.min.js").exists():
        raise NsfwjsError(f"no InceptionV3 model in {model_dir}: run `npm ci`")
    try:
        result = subprocess.run(
            ["node", "-e", _DUMP_SCRIPT, str(model_dir)], capture_output=True, check=True, timeout=300
        )
    except subprocess.CalledProcessError as exc:
        raise NsfwjsError(f"node could not read {model_dir}: {exc.stderr.decode(errors='replace')[-500:]}") from exc
    dumped = json.loads(result.stdout)
    data = b"".join(base64.b64decode(shard) for shard in dumped["shards"])
    return dumped["topology"], dequantise_weights(dumped["manifest"], data)


def _layer(class_name: str, config: dict) -> keras.layers.Layer:
    import keras

    name = config["name"]
    if class_name == "Conv2D":
        return keras.layers.Conv2D(
            config["filters"],
            tuple(config["kernel_size"]),
            strides=tuple(config["strides"]),
            padding=config["padding"],
            activation=config["activation"],
            use_bias=config["use_bias"],
            name=name,
        )
    if class_name == "BatchNormalization":
        return keras.layers.BatchNormalization(
            epsilon=config["epsilon"], center=config["center"], scale=config["scale"], name=name
        )
    if class_name == "Activation":
        return keras.layers.Activation(config["activation"], name=name)
    if class_name in ("MaxPooling2D", "AveragePooling2D"):
        layer = getattr(keras.layers, class_name)
        return layer(tuple(config["pool_size"]), strides=tuple(config["strides"]), padding=config["padding"], name=name)
    if class_name == "Concatenate":
        return keras.layers.Concatenate(axis=config["axis"], name=name)
    if class_name == "Flatten":
        return keras.layers.Flatten(name=name)
    if class_name == "Dropout":
        return keras.layers.Dropout(config["rate"], name=name)
    if class_name == "Dense":
        return keras.layers.Dense(config["units"], activation=config["activation"], name=name)
    raise NsfwjsError(f"unexpected layer {class_name} ({name}) in the InceptionV3 topology")


def build_inception_v3(topology: dict, weights: dict[str, np.ndarray]) -> keras.Model:
    """The shipped network rebuilt in Keras 3 from its Keras 2 topology, every weight assigned by name."""
    import keras

    config = topology["model_config"]["config"]
    tensors: dict[str, object] = {}
    for spec in config["layers"]:
        name, class_name = spec["name"], spec["class_name"]
        if class_name == "InputLayer":
            tensors[name] = keras.Input(shape=tuple(spec["config"]["batch_input_shape"][1:]), name=name)
            continue
        inbound = [tensors[node[0]] for node in spec["inbound_nodes"][0]]
        tensors[name] = _layer(class_name, spec["config"])(inbound if len(inbound) > 1 else inbound[0])
    model = keras.Model(tensors[config["input_layers"][0][0]], tensors[config["output_layers"][0][0]])
    assigned = set()
    for layer in model.layers:
        for variable in layer.weights:
            key = f"{layer.name}/{variable.name}"
            if key not in weights:
                raise NsfwjsError(f"no shipped weight for {key}")
            if tuple(weights[key].shape) != tuple(variable.shape):
                raise NsfwjsError(f"{key}: shape {weights[key].shape} does not fit {tuple(variable.shape)}")
            variable.assign(weights[key])
            assigned.add(key)
    unused = set(weights) - assigned
    if unused:
        raise NsfwjsError(f"{len(unused)} shipped weights were not used, e.g. {sorted(unused)[:3]}")
    return model


@functools.lru_cache(maxsize=1)
def cached_inception_v3(package_dir: str) -> keras.Model:
    """One loaded confirmer per process (reading and building it takes seconds)."""
    return build_inception_v3(*read_inception_v3(Path(package_dir)))


def class_probabilities(model: keras.Model, frames_rgb: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """float32[N, 5] nsfwjs class probabilities (``CLASS_NAMES`` order) of uint8 RGB frames."""
    import tensorflow as tf

    frames = np.asarray(frames_rgb)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames of shape (N, H, W, 3), got {frames.dtype} {frames.shape}")
    outputs = []
    for start in range(0, len(frames), batch_size):
        scaled = tf.cast(frames[start : start + batch_size], tf.float32) / 255.0
        resized = tf.raw_ops.ResizeBilinear(
            images=scaled, size=[INPUT_SIZE, INPUT_SIZE], align_corners=True, half_pixel_centers=False
        )
        outputs.append(np.asarray(model.predict_on_batch(resized), dtype=np.float32))
    if not outputs:
        return np.zeros((0, len(CLASS_NAMES)), dtype=np.float32)
    return np.concatenate(outputs)


def nudity_scores(probabilities: np.ndarray) -> np.ndarray:
    """P(porn) + P(hentai) per frame, as the screening head's score."""
    columns = [CLASS_NAMES.index(name) for name in POSITIVE_CLASSES]
    return np.clip(np.asarray(probabilities)[:, columns].sum(axis=1), 0.0, 1.0)


def confirm_frames_at(package_dir: str | Path, path: str | Path, sample_ms: list[int]) -> np.ndarray:
    """float32[N, 5] class probabilities of the file's frames nearest these times, decoded here (browser-exact RGB).

    The one way the server confirms a flag: the pixels are always its own decode of the file, never a client's.
    """
    if not sample_ms:
        return np.zeros((0, len(CLASS_NAMES)), dtype=np.float32)
    return class_probabilities(cached_inception_v3(str(package_dir)), decode_frames_at(path, sample_ms))

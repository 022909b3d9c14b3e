"""Read the MobileNetV2 that the npm package nsfwjs@4.4.0 (MIT) ships.

The package bundles its model as two UMD modules in ``dist/models/mobilenet_v2/``:
``model.min.js`` exports ``{modelTopology, weightsManifest}`` (a Keras 2.2.4 functional
model) and ``group1-shard1of1.min.js`` exports the weights as one base64 string, every
tensor uint8-quantised (value = q * scale + min). Node evaluates the modules (they are
JavaScript, not JSON); Python decodes and dequantises the weights exactly as TF.js does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_SUBDIR = Path("dist") / "models" / "mobilenet_v2"
MODEL_FILES = ("model.min.js", "group1-shard1of1.min.js")
CLASS_NAMES = ("drawing", "hentai", "neutral", "porn", "sexy")
FEATURE_LAYER = "flatten_1"
HEAD_LAYERS = ("dense_1", "dense_2", "dense_3")

_DUMP_SCRIPT = """
const dir = process.argv[1];
const model = require(dir + "/model.min.js");
const shard = require(dir + "/group1-shard1of1.min.js");
process.stdout.write(JSON.stringify({topology: model.modelTopology, manifest: model.weightsManifest, shard: shard}));
"""


class NsfwjsError(RuntimeError):
    """The nsfwjs package is missing or not the model this code expects."""


@dataclass(frozen=True)
class NsfwjsModel:
    """The shipped network: Keras 2 topology and float32 weights keyed by TF.js weight name."""

    version: str
    topology: dict
    weights: dict[str, np.ndarray]
    source_sha256: str

    @property
    def layers(self) -> list[dict]:
        return self.topology["model_config"]["config"]["layers"]


def package_version(package_dir: Path) -> str:
    try:
        return json.loads((Path(package_dir) / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError) as exc:
        raise NsfwjsError(f"no nsfwjs package.json in {package_dir}: run `npm ci`") from exc


def source_sha256(package_dir: Path) -> str:
    """Hash of the two shipped model files: names the source of everything built from them."""
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        path = Path(package_dir) / MODEL_SUBDIR / name
        try:
            digest.update(path.read_bytes())
        except OSError as exc:
            raise NsfwjsError(f"missing nsfwjs model file {path}: run `npm ci`") from exc
    return digest.hexdigest()


def dequantise_weights(manifest: list[dict], data: bytes) -> dict[str, np.ndarray]:
    """Split the weight buffer per the manifest and dequantise like TF.js (float64 maths, float32 result)."""
    weights: dict[str, np.ndarray] = {}
    offset = 0
    for group in manifest:
        for spec in group["weights"]:
            shape = tuple(spec["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            quant = spec.get("quantization")
            if quant is None:
                raw = np.frombuffer(data, dtype=np.float32, count=count, offset=offset)
                values = raw.astype(np.float32)
                offset += 4 * count
            elif quant["dtype"] == "uint8":
                raw = np.frombuffer(data, dtype=np.uint8, count=count, offset=offset)
                values = (raw.astype(np.float64) * quant["scale"] + quant["min"]).astype(np.float32)
                offset += count
            else:
                raise NsfwjsError(f"unsupported quantisation {quant['dtype']!r} for {spec['name']}")
            weights[spec["name"]] = values.reshape(shape)
    if offset != len(data):
        raise NsfwjsError(f"weight buffer has {len(data)} bytes, manifest describes {offset}")
    return weights


def load_nsfwjs(package_dir: Path) -> NsfwjsModel:
    """Evaluate the package's UMD model modules with node and return the network they describe."""
    package_dir = Path(package_dir)
    version = package_version(package_dir)
    digest = source_sha256(package_dir)
    model_dir = (package_dir / MODEL_SUBDIR).resolve()
    try:
        result = subprocess.run(
            ["node", "-e", _DUMP_SCRIPT, str(model_dir)], capture_output=True, check=True, timeout=120
        )
    except FileNotFoundError as exc:
        raise NsfwjsError("node is needed to read the nsfwjs model modules") from exc
    except subprocess.CalledProcessError as exc:
        raise NsfwjsError(f"node could not read {model_dir}: {exc.stderr.decode(errors='replace')[-500:]}") from exc
    dumped = json.loads(result.stdout)
    weights = dequantise_weights(dumped["manifest"], base64.b64decode(dumped["shard"]))
    return NsfwjsModel(version=version, topology=dumped["topology"], weights=weights, source_sha256=digest)

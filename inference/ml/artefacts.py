"""Build, find and read the model artefacts of one CNN chunk version.

An artefact directory ``HYDRA_MODEL_ROOT/<content_hash>/`` holds the browser export
(``model.json`` + uint8 weight shards, whose bytes the content hash covers), the server's
Keras weights (dequantised from those same uint8 codes, so both sides compute one function),
the same weights as a .tflite for the server's runtime (its sha256 in the manifest), the nsfw
head and ``manifest.json``. Directories are written under a temporary name and renamed into
place, so a directory that exists is complete. The browser files are never modified; a directory
an older builder wrote gains the newer server files (each file renamed into place, the manifest
last), so a reader sees either the old manifest or the new one with its files present.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from inference.ml import cnn, export, nsfw_head, quantise
from inference.ml.nsfwjs import CLASS_NAMES, load_nsfwjs, package_version, source_sha256

MANIFEST = "manifest.json"
# Bump when the build changes what it writes for the same nsfwjs files.
BUILDER_VERSION = 2  # 2: the server's .tflite


class ArtefactError(RuntimeError):
    """An artefact directory is incomplete or does not match its hash."""


@dataclass(frozen=True)
class Artefacts:
    directory: Path
    manifest: dict

    @property
    def content_hash(self) -> str:
        return self.manifest["content_hash"]

    @property
    def browser_files(self) -> tuple[str, ...]:
        return tuple(self.manifest["browser_files"])


def build_key(nsfwjs_dir: Path) -> str:
    """Names what a build starts from (the shipped model files and this builder), without building."""
    return hashlib.sha256(f"{source_sha256(nsfwjs_dir)}:{BUILDER_VERSION}".encode()).hexdigest()


def read_artefacts(directory: Path) -> Artefacts:
    """Read a directory's manifest and check that its files exist and hash to its name."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ArtefactError(f"{directory}: unreadable {MANIFEST}") from exc
    artefacts = Artefacts(directory=directory, manifest=manifest)
    missing = [
        name
        for name in (*artefacts.browser_files, *manifest["server_files"].values())
        if not (directory / name).is_file()
    ]
    if missing:
        raise ArtefactError(f"{directory}: missing {', '.join(missing)}")
    actual = export.content_hash(directory, artefacts.browser_files)
    if actual != artefacts.content_hash or directory.name != actual:
        raise ArtefactError(f"{directory}: browser files hash to {actual}, manifest says {artefacts.content_hash}")
    return artefacts


def find_artefacts(model_root: Path, nsfwjs_dir: Path) -> Artefacts | None:
    """The complete artefact directory built from these nsfwjs files by this builder, if any."""
    key = build_key(nsfwjs_dir)
    for manifest_path in sorted(Path(model_root).glob(f"*/{MANIFEST}")):
        try:
            if json.loads(manifest_path.read_text()).get("build_key") != key:
                continue
            return read_artefacts(manifest_path.parent)
        except (ArtefactError, OSError, ValueError):
            continue
    return None


def build_artefacts(model_root: Path, nsfwjs_dir: Path) -> Artefacts:
    """Build every artefact from the nsfwjs package (takes seconds: imports TensorFlow)."""
    model_root = Path(model_root)
    model_root.mkdir(parents=True, exist_ok=True)
    source = load_nsfwjs(nsfwjs_dir)
    model = cnn.build_feature_extractor()
    cnn.assign_weights(model, source.weights)
    staging = model_root / f".build-{uuid.uuid4().hex}"
    try:
        browser = export.export_browser_model(model, staging)
        # The server computes with exactly the weights the browser will dequantise.
        cnn.assign_weights(model, browser.dequantised)
        model.save_weights(staging / cnn.WEIGHTS_FILE)
        tflite = export.tflite_flatbuffer(model)
        (staging / cnn.TFLITE_FILE).write_bytes(tflite)
        nsfw_head.head_from_nsfwjs(source).save(staging / nsfw_head.WEIGHTS_FILE)
        manifest = {
            "content_hash": browser.content_hash,
            "name": f"nsfwjs-{source.version}-mobilenet_v2",
            "source": f"nsfwjs@{package_version(nsfwjs_dir)} mobilenet_v2 (MIT)",
            "build_key": build_key(nsfwjs_dir),
            "builder_version": BUILDER_VERSION,
            "feature_size": cnn.FEATURE_SIZE,
            "preprocessing": cnn.PREPROCESSING,
            "quantisation": quantise.QUANTISATION,
            "nsfw_classes": list(CLASS_NAMES),
            "browser_files": list(browser.files),
            "server_files": {
                "cnn": cnn.WEIGHTS_FILE,
                "cnn_tflite": cnn.TFLITE_FILE,
                "nsfw_head": nsfw_head.WEIGHTS_FILE,
            },
            "server_hashes": {"cnn_tflite": hashlib.sha256(tflite).hexdigest()},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        final = model_root / browser.content_hash
        try:
            staging.rename(final)
        except OSError:
            if not final.is_dir():  # another process may have finished the same build first
                raise
            _add_server_files(final, staging, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return read_artefacts(final)


def _add_server_files(final: Path, staging: Path, manifest: dict) -> None:
    """Give a directory an older builder wrote (same browser files) the server files this builder adds."""
    current = json.loads((final / MANIFEST).read_text())
    if current.get("builder_version", 0) >= BUILDER_VERSION:
        return
    for key, name in manifest["server_files"].items():
        if key not in current["server_files"]:  # a stray copy from an interrupted upgrade is replaced
            (staging / name).rename(final / name)
    (staging / MANIFEST).rename(final / MANIFEST)


def ensure_artefacts(model_root: Path, nsfwjs_dir: Path) -> Artefacts:
    """The artefacts for these nsfwjs files, built only if no complete directory exists yet."""
    return find_artefacts(model_root, nsfwjs_dir) or build_artefacts(model_root, nsfwjs_dir)

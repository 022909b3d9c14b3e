"""Measure what uint8 features over [0, 6] cost, and how fast the server's Keras CNN is.

    .venv/bin/python -m bench.ml_quantisation [--frames 96]

Frames: crops of a real photograph (matplotlib's sample ``grace_hopper.jpg``, shipped with
a pinned dependency) at several scales, and frames of the synthetic clips the tests use.
Prints the feature error of the fixed [0, 6] uint8 code (the wire and storage format), the
nsfw head's agreement on float32 vs dequantised features, and Keras ms/frame at batch 1 and 32.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hydra_site.settings")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def photo_crops(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    import matplotlib
    from PIL import Image

    photo = np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB"))
    height, width = photo.shape[:2]
    crops = []
    for _ in range(count):
        size = int(rng.integers(min(height, width) // 4, min(height, width)))
        top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
        crop = photo[top : top + size, left : left + size]
        crops.append(np.asarray(Image.fromarray(crop).resize((320, 240), Image.BILINEAR)))
    return crops


def synthetic_frames(count: int) -> list[np.ndarray]:
    from videos.synthetic import PATTERNS, iter_frames

    per_pattern = max(1, count // len(PATTERNS))
    return [
        frame
        for pattern in PATTERNS
        for index, frame in enumerate(iter_frames(pattern, per_pattern, 1, 320, 240, seed=5))
        if index < per_pattern
    ]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def quantisation_error(features: np.ndarray, head) -> dict[str, float]:
    """What the uint8 wire/storage code costs: feature error, and the nsfw head on float32 vs uint8 features."""
    from inference.ml.quantise import dequantise, quantise

    restored = dequantise(quantise(features))
    p_float, p_uint8 = head.predict(features), head.predict(restored)
    return {
        "frames": len(features),
        "feature_min": float(features.min()),
        "feature_max": float(features.max()),
        "max_abs_error": float(np.abs(restored - features).max()),
        "mean_abs_error": float(np.abs(restored - features).mean()),
        "min_cosine": float(cosine(features, restored).min()),
        "argmax_agreement": float(np.mean(p_float.argmax(1) == p_uint8.argmax(1))),
        "max_prob_difference": float(np.abs(p_float - p_uint8).max()),
    }


def report(name: str, features: np.ndarray, head) -> None:
    error = quantisation_error(features, head)
    print(
        f"{name:10s} n={error['frames']:3d}  feature range [{error['feature_min']:.3f}, {error['feature_max']:.3f}]  "
        f"max|err| {error['max_abs_error']:.5f}  mean|err| {error['mean_abs_error']:.5f}  "
        f"min cosine {error['min_cosine']:.7f}  "
        f"head argmax agree {error['argmax_agreement'] * 100:.1f}%  "
        f"max|dprob| {error['max_prob_difference']:.5f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=96, help="frames per source (photo crops, synthetic)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings

    from bench.server_only import keras_ms_per_frame
    from inference.ml import cnn
    from inference.ml.artefacts import ensure_artefacts
    from inference.ml.nsfw_head import load_nsfw_head

    artefacts = ensure_artefacts(settings.HYDRA_MODEL_ROOT, settings.HYDRA_NSFWJS_DIR)
    model = cnn.load_feature_extractor(artefacts.directory)
    head = load_nsfw_head(artefacts.directory / "nsfw_head.npz")
    rng = np.random.default_rng(0)
    photo = np.stack(photo_crops(args.frames, rng))
    synthetic = np.stack(synthetic_frames(args.frames))
    features = {
        name: cnn.compute_features(model, frames) for name, frames in (("photo", photo), ("synthetic", synthetic))
    }
    print(f"model {artefacts.content_hash[:12]}  uint8 over [0, 6], step {6 / 255:.5f}")
    for name, values in features.items():
        report(name, values, head)
    report("all", np.concatenate(list(features.values())), head)
    frames = np.concatenate([photo, synthetic])[:64]
    batch1 = keras_ms_per_frame(model, frames[:16], 1, repeats=3)["wall_ms_per_frame"]
    batch32 = keras_ms_per_frame(model, frames, 32, repeats=3)["wall_ms_per_frame"]
    print(f"keras ms/frame (320x240 in, resize included, median of 3): batch 1 {batch1:.1f}, batch 32 {batch32:.1f}")


if __name__ == "__main__":
    main()

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
import time
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


def report(name: str, features: np.ndarray, head) -> None:
    from inference.ml.quantise import dequantise, quantise

    restored = dequantise(quantise(features))
    p_float, p_uint8 = head.predict(features), head.predict(restored)
    print(
        f"{name:10s} n={len(features):3d}  feature range [{features.min():.3f}, {features.max():.3f}]  "
        f"max|err| {np.abs(restored - features).max():.5f}  mean|err| {np.abs(restored - features).mean():.5f}  "
        f"min cosine {cosine(features, restored).min():.7f}  "
        f"head argmax agree {np.mean(p_float.argmax(1) == p_uint8.argmax(1)) * 100:.1f}%  "
        f"max|dprob| {np.abs(p_float - p_uint8).max():.5f}"
    )


def time_keras(model, frames: np.ndarray, batch_size: int, repeats: int = 2) -> float:
    from inference.ml.cnn import compute_features

    compute_features(model, frames[:batch_size], batch_size=batch_size)  # warm up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        compute_features(model, frames, batch_size=batch_size)
        best = min(best, (time.perf_counter() - started) / len(frames) * 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=96, help="frames per source (photo crops, synthetic)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings

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
    print(
        f"keras ms/frame (320x240 in, resize included): batch 1 {time_keras(model, frames[:16], 1):.1f}, "
        f"batch 32 {time_keras(model, frames, 32):.1f}"
    )


if __name__ == "__main__":
    main()

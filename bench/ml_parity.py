"""Keras (server) against TF.js (the browser's library, cpu backend in node) on the same frames.

    .venv/bin/python -m bench.ml_parity [--frames 8]

Prints min cosine and max abs difference of the 1280-d features for (a) nsfwjs's own network
as shipped and (b) Hydra's exported browser model, and the nsfw head's agreement with nsfwjs.
The tests assert thresholds on the same comparison (tests/inference/test_ml_cnn.py).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hydra_site.settings")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="frames per source (TF.js cpu takes ~1 s each)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings

    from bench.ml_quantisation import cosine, photo_crops, synthetic_frames
    from inference.ml import cnn
    from inference.ml.artefacts import ensure_artefacts
    from inference.ml.nsfw_head import load_nsfw_head
    from inference.ml.tfjs import run_tfjs

    artefacts = ensure_artefacts(settings.HYDRA_MODEL_ROOT, settings.HYDRA_NSFWJS_DIR)
    model = cnn.load_feature_extractor(artefacts.directory)
    head = load_nsfw_head(artefacts.directory / "nsfw_head.npz")
    frames = np.stack(photo_crops(args.frames, np.random.default_rng(1)) + synthetic_frames(args.frames))
    keras_features = cnn.compute_features(model, frames)
    probabilities = head.predict(keras_features)

    nsfwjs = run_tfjs(frames, ["flatten_1", "dense_3"], nsfwjs_dir=settings.HYDRA_NSFWJS_DIR)
    export = run_tfjs(frames, ["features"], model_dir=artefacts.directory)
    print(f"{len(frames)} frames (320x240), model {artefacts.content_hash[:12]}")
    for name, other in (("nsfwjs as shipped", nsfwjs["flatten_1"]), ("hydra export", export["features"])):
        print(
            f"keras vs tfjs {name:18s} min cosine {cosine(keras_features, other).min():.8f}  "
            f"max|diff| {np.abs(keras_features - other).max():.2e}"
        )
    agree = np.mean(probabilities.argmax(1) == nsfwjs["dense_3"].argmax(1)) * 100
    print(
        f"nsfw head (numpy on keras features) vs nsfwjs: argmax agree {agree:.0f}%  "
        f"max|dprob| {np.abs(probabilities - nsfwjs['dense_3']).max():.2e}"
    )


if __name__ == "__main__":
    main()

"""Measure how far honest browsers' features stray from the server's, and how far lies land: the trust tolerance.

    python -m bench.trust_parity [--out docs/trust-parity.json]

For clips of several sizes and contents (generated here, H.264, tagged and untagged), every
sample frame is painted the way each browser profile paints it (tests/trust/harness.py:
Chromium's software path, a GPU's bilinear chroma, swscale, textbook float matrices), run
through the same Keras CNN chunk, quantised to uint8 as on the wire, and compared with the
server's own quantised features: cosine, norm ratio and the largest nudity-head probability
difference. The same is done for every lie of the threat model. The tolerance in settings
(HYDRA_TRUST_MIN_COSINE, _MAX_NORM_RATIO, _MAX_HEAD_DIFFERENCE) must lie between the two.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from inference.ml import cnn
from inference.ml.artefacts import ensure_artefacts
from inference.ml.nsfw_head import WEIGHTS_FILE, load_nsfw_head
from inference.sampling import sample_times_ms
from inference.trust.agreement import compare_to_reference
from tests.trust import harness
from videos.synthetic import write_video

CLIPS = (
    # name, pattern, width, height, seconds
    ("bars-720p", "bars", 1280, 720, 4),
    ("calm-360p", "calm", 640, 360, 4),
    ("erratic-240p", "erratic", 320, 240, 4),
    ("noise-144p", "noise", 176, 144, 3),
)


def measure(model_root: Path, nsfwjs_dir: Path) -> dict:
    artefacts = ensure_artefacts(model_root, nsfwjs_dir)
    model = cnn.cached_feature_extractor(str(artefacts.directory))
    head = load_nsfw_head(artefacts.directory / WEIGHTS_FILE)

    def features(rgb: np.ndarray) -> np.ndarray:
        return cnn.compute_features(model, rgb)

    truths = []
    with tempfile.TemporaryDirectory() as folder:
        for name, pattern, width, height, seconds in CLIPS:
            path = write_video(
                Path(folder) / f"{name}.mp4",
                seconds=seconds,
                fps=24,
                width=width,
                height=height,
                pattern=pattern,
                seed=7,
            )
            times = sample_times_ms(seconds * 1000, 24, 500)
            truths.append(harness.video_truth(name, path, times, features))

    honest: dict[str, dict[str, list[float]]] = {}
    for profile in harness.BROWSER_PROFILES:
        rows = [
            comparison
            for truth in truths
            for reference, sent in zip(truth.server, truth.by_profile[profile], strict=True)
            for comparison in compare_to_reference(
                harness.wire_roundtrip(reference), harness.wire_roundtrip(sent)[None, :], head.predict
            )
        ]
        honest[profile] = _summary(rows)
    lies: dict[str, dict[str, list[float]]] = {}
    for behaviour in harness.MALICIOUS:
        rows = []
        for truth in truths:
            others = [t for t in truths if t is not truth]
            for index, t in enumerate(truth.times):
                sent = harness.lie(behaviour, truth, t, others=others, head=head, seed="parity")
                rows += compare_to_reference(
                    harness.wire_roundtrip(truth.server[index]), harness.wire_roundtrip(sent)[None, :], head.predict
                )
        lies[str(behaviour)] = _summary(rows)
    return {"frames": sum(len(t.times) for t in truths), "clips": [c[0] for c in CLIPS], "honest": honest, "lies": lies}


def _summary(rows) -> dict[str, float]:
    cosines = np.array([r.cosine for r in rows])
    ratios = np.array([r.norm_ratio for r in rows])
    heads = np.array([r.head_difference for r in rows])
    return {
        "n": len(rows),
        "cosine_min": float(cosines.min()),
        "cosine_p01": float(np.quantile(cosines, 0.01)),
        "cosine_median": float(np.median(cosines)),
        "norm_ratio_max": float(ratios.max()),
        "head_difference_max": float(heads.max()),
        "head_difference_median": float(np.median(heads)),
    }


def main() -> None:
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hydra_site.settings")

    django.setup()
    from django.conf import settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = measure(settings.HYDRA_MODEL_ROOT, settings.HYDRA_NSFWJS_DIR)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

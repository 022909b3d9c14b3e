"""Which sampling rate and pooling the violence head needs: the sweep behind docs/models.md, re-runnable.

    .venv/bin/python -m bench.violence_sweep [--dataset ../shared/datasets/fight-surveillance]

Data: the fight-surveillance clips of Aktı, Tataroğlu and Ekenel, "Vision-based Fight Detection from
Surveillance Cameras" (IPTA 2019). Every clip's frames nearest to each multiple of 62.5 ms go through the CNN
once (browser-exact frames, uint8 features; cached under ``HYDRA_MODEL_ROOT/clip-features``, minutes the first
time), so 1, 4, 8 and 16 samples per second and their phases are read from one cache. Each variant is scored
with the shipped head's protocol (``inference.ml.pooled_training.cross_validate``: 5 stratified folds over
clips, seed 0, balanced accuracy at 0.5, highest window per clip). One JSON line per variant, then a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hydra_site.settings")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

STEP_MS = 62.5
DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fight-surveillance"
# (name, interval ms, window samples, training phases, statistics, regularisation)
VARIANTS = (
    ("1/s, phase 0 only", 1000, 3, 1, ("mean", "std", "absdiff"), 0.01),
    ("1/s, 4 phases (shipped)", 1000, 3, 4, ("mean", "std", "absdiff"), 0.01),
    ("1/s, 4 phases, no spread", 1000, 3, 4, ("mean", "absdiff"), 0.01),
    ("1/s, 4 phases, C 0.001", 1000, 3, 4, ("mean", "std", "absdiff"), 0.001),
    ("4/s, window 8 (shipped for 250 ms)", 250, 8, 1, ("mean", "std", "absdiff"), 0.01),
    ("4/s, window 8, 4 phases", 250, 8, 4, ("mean", "std", "absdiff"), 0.01),
    ("8/s, window 16, 2 phases", 125, 16, 2, ("mean", "std", "absdiff"), 0.01),
    ("8/s, window 16, change only", 125, 16, 2, ("absdiff",), 0.01),
    ("16/s, window 32", 62.5, 32, 1, ("mean", "std", "absdiff"), 0.01),
)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    args = parser.parse_args(argv)

    import django

    django.setup()
    from inference import selectors
    from inference.ml.clip_features import cached_clip_features, phase_offsets_ms, sampled_features
    from inference.ml.pooled_training import PhasedClip, cross_validate
    from inference.ml.training import find_labelled_videos
    from inference.ml.violence import PooledConfig
    from inference.services.pooled_heads import clip_feature_cache

    model_version = selectors.active_model_version()
    if model_version is None:
        raise SystemExit("no active model version: run `manage.py build_models` first")
    artefact_dir = selectors.model_artefact_dir(model_version)
    started = time.perf_counter()
    labelled = find_labelled_videos(args.dataset)
    features = [cached_clip_features(f.path, artefact_dir, clip_feature_cache(), STEP_MS) for f in labelled]
    print(f"{len(features)} clips, features in {time.perf_counter() - started:.1f} s", flush=True)

    results = []
    for name, interval, window, phases, statistics, regularisation in VARIANTS:
        clips = [
            PhasedClip(
                key=str(f.path.relative_to(args.dataset)),
                label=f.label,
                phases=tuple(sampled_features(clip, interval, offset) for offset in phase_offsets_ms(interval, phases)),
            )
            for f, clip in zip(labelled, features, strict=True)
        ]
        config = PooledConfig(window=window, statistics=statistics, regularisation=regularisation)
        report = cross_validate(clips, config, folds=5, seed=0)
        row = {
            "variant": name,
            "balanced_accuracy_mean": report["balanced_accuracy_mean"],
            "balanced_accuracy_std": report["balanced_accuracy_std"],
            "roc_auc": round(report["out_of_fold"]["roc_auc"], 4),
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    best = max(results, key=lambda row: row["balanced_accuracy_mean"])
    print(json.dumps({"best_variant": best["variant"], "best_balanced_accuracy_cv": best["balanced_accuracy_mean"]}))
    return results


if __name__ == "__main__":
    main()

"""Which sampling rate and pooling the violence head needs: the sweep behind docs/models.md, re-runnable.

    .venv/bin/python -m bench.violence_sweep [--dataset ../shared/datasets/fight-surveillance]

Data: the fight-surveillance clips of Aktı, Tataroğlu and Ekenel, "Vision-based Fight Detection from
Surveillance Cameras" (IPTA 2019). Every clip's frames nearest to each multiple of 62.5 ms go through the CNN
once (browser-exact frames, uint8 features; cached under ``HYDRA_MODEL_ROOT/clip-features``, minutes the first
time), so 1, 4, 8 and 16 samples per second and their phases are read from one cache. Each variant is scored
with the shipped head's protocol (``inference.ml.pooled_training.cross_validate``: 5 stratified folds over
clips, seed 0, balanced accuracy at 0.5, highest window per clip). One JSON line per variant, then a summary.

    .venv/bin/python -m bench.violence_sweep --smoothness [--every 8]

Whether a smoother 1/s head lets peers carry its decisions (docs/trust.md, window heads): for each L2 strength,
the cross-validated accuracy, how far honest paintings of real frames (every ``--every``-th clip, 8 frames each,
painted as each browser backend paints them, ``inference.trust.paintings``) move one sample's window-logit bound
(``verification.pooled_sensitivity``), the ``HYDRA_TRUST_MAX_WINDOW_DIFFERENCE`` that measurement calls for
(``SMOOTHNESS_MARGIN`` above the largest close painting) and the share of honest samples that bound makes
borderline (held-out clips at phase 0, scored by the fold's head; at the head's threshold 0.9, and at the
threshold with the shipped head's false-positive rate, since stronger L2 also shrinks the logits).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

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


# 1/s, window 3, 4 phases: the shipped protocol at these inverse L2 strengths (scikit-learn's C).
SMOOTHNESS_REGULARISATION = (0.01, 0.001, 0.0001, 0.00001)
SMOOTHNESS_MARGIN = 1.25
CLOSE_PAINTINGS = ("float-matrix", "swscale")  # the GPU painting is recognised by the server's paintings
HEAD_THRESHOLD = 0.9


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--smoothness", action="store_true", help="measure the window guard's cost per L2 strength")
    parser.add_argument("--every", type=int, default=8, help="with --smoothness: paint every n-th clip")
    args = parser.parse_args(argv)

    import django

    django.setup()
    if args.smoothness:
        return smoothness(args.dataset, args.every)
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


def honest_differences(dataset: Path, every: int) -> dict[str, np.ndarray]:
    """Per browser painting, |its features - the server's| (dequantised uint8) for 8 frames of every n-th clip."""
    from inference import selectors
    from inference.ml import cnn
    from inference.ml.quantise import dequantise, quantise
    from inference.ml.training import find_labelled_videos
    from inference.trust import paintings

    model = cnn.cached_feature_extractor(str(selectors.model_artefact_dir(selectors.active_model_version())))
    times = list(range(0, 2000, 250))
    differences: dict[str, list] = {name: [] for name in paintings.ALTERNATIVES}
    for labelled in find_labelled_videos(dataset)[::every]:
        painted = {}
        for name in paintings.PAINTINGS:
            frames = paintings.painted_frames(labelled.path, times, name)
            painted[name] = dequantise(quantise(cnn.compute_features(model, frames)))
        for name in paintings.ALTERNATIVES:
            differences[name].append(np.abs(painted[name] - painted["chromium-software"]))
    return {name: np.concatenate(rows) for name, rows in differences.items()}


def borderline_share(scored: list, threshold_logit: float, reach: float) -> float:
    """Share of samples ``confirm_borderline_windows`` would have the server compute (``scored``: (head, samples))."""
    from inference.ml.temporal import sample_scores
    from inference.ml.violence import window_descriptors

    marked = total = 0
    for head, sequence in scored:
        descriptors, bounds = window_descriptors(sequence, head.config)
        logits = ((descriptors - head.mean) / head.scale) @ head.coef + head.intercept
        per_sample = sample_scores(len(sequence), bounds, 1 / (1 + np.exp(-logits)))  # as FrameScore stores them
        near = [i for i, score in enumerate(per_sample) if abs(_logit(score) - threshold_logit) <= reach]
        spread = head.config.window - 1
        samples = {j for i in near for j in range(max(0, i - spread), min(len(sequence), i + spread + 1))}
        marked += len(samples)
        total += len(sequence)
    return marked / total


def smoothness(dataset: Path, every: int) -> list[dict]:
    from inference import selectors
    from inference.ml.pooled_training import cross_validate, fit_on_clips, stratified_folds
    from inference.ml.violence import PooledConfig
    from inference.services.pooled_heads import phased_clips_from_folder
    from inference.trust.verification import pooled_sensitivity

    clips = phased_clips_from_folder(dataset, selectors.active_model_version(), phases=4)  # 1/s, as shipped
    differences = honest_differences(dataset, every)
    labels = np.asarray([clip.label for clip in clips])
    folds = stratified_folds(labels, 5, 0)
    shipped_false_positive_rate = None
    results = []
    for regularisation in SMOOTHNESS_REGULARISATION:
        config = PooledConfig(window=3, regularisation=regularisation)
        report = cross_validate(clips, config, folds=5, seed=0)
        weights = pooled_sensitivity(fit_on_clips(clips, np.arange(len(clips)), config, 0))
        moves = {name: differences[name] @ weights for name in differences}
        close = float(max(moves[name].max() for name in CLOSE_PAINTINGS))
        bound = SMOOTHNESS_MARGIN * close
        held_out = []
        for test in folds:
            head = fit_on_clips(clips, np.setdiff1d(np.arange(len(clips)), test), config, 0)
            held_out += [(head, clips[i].phases[0]) for i in test]
        scores = np.asarray([report["out_of_fold_scores"][clip.key] for clip in clips])
        false_positive_rate = float(np.mean(scores[labels == 0] >= HEAD_THRESHOLD))
        if shipped_false_positive_rate is None:  # the first row is the shipped head: its operating point
            shipped_false_positive_rate = false_positive_rate
        same_rate = float(np.quantile(scores[labels == 0], 1 - shipped_false_positive_rate))
        row = {
            "regularisation": regularisation,
            "balanced_accuracy_mean": report["balanced_accuracy_mean"],
            "balanced_accuracy_std": report["balanced_accuracy_std"],
            "roc_auc": round(report["out_of_fold"]["roc_auc"], 4),
            "honest_close_max": round(close, 3),
            "honest_gpu_max": round(float(moves["gpu-bilinear-chroma"].max()), 3),
            "max_window_difference": round(bound, 2),
            "borderline_share_at_0.9": round(borderline_share(held_out, _logit(HEAD_THRESHOLD), 3 * bound), 3),
            "false_positive_rate_at_0.9": round(false_positive_rate, 3),
            "borderline_share_at_same_fpr": round(borderline_share(held_out, _logit(same_rate), 3 * bound), 3),
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    return results


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-7), 1 - 1e-7)  # as verification._logit: float32 scores saturate
    return float(np.log(p / (1 - p)))


if __name__ == "__main__":
    main()

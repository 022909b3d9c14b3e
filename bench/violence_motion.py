"""Do cheap pixel-motion descriptors lift the violence head towards 0.80? The measurement behind docs/models.md.

    .venv/bin/python -m bench.violence_motion [--dataset ../shared/datasets/fight-surveillance]

Data: the fight-surveillance clips of Aktı, Tataroğlu and Ekenel, "Vision-based Fight Detection from
Surveillance Cameras" (IPTA 2019). Per clip: the CNN chunk's features every 250 ms (the cache the shipped head's
training uses, ``HYDRA_MODEL_ROOT/clip-features``) and, for every decoded frame, the 64x64 integer grey thumbnail
of ``inference.ml.motion`` (cached under ``HYDRA_MODEL_ROOT/clip-motion``; about 2 minutes the first time here).

A sample at time t (the frames the player samples: nearest to each multiple of the interval, from a phase) gets
the motion descriptors of the pair (frame at t, frame nearest t + k): ``k`` is the burst offset, one extra frame
the player captures (or, at 4/s with k = 250 ms, the next sample itself: no extra frame). "every frame" pools
all consecutive-frame pairs between t and the next sample (a playing video shows them anyway). A window of
samples (as the shipped head's: 3 at 1/s, 8 at 4/s, stride 1) is described by the mean, spread, largest value and
mean absolute change of its pairs' descriptors; the CNN part is the shipped head's (mean, spread, change of the
1280-d features). Heads: L2 logistic regression on standardised descriptors (classes balanced), motion alone,
CNN and motion concatenated, or the two heads' logits averaged (stacked).

Protocol: the shipped head's (``pooled_training.stratified_folds``: 5 folds over clips, seed 0; trained on the
other folds at every training phase, held-out clips scored at phase 0 by their highest window; balanced
accuracy at 0.5 per fold, mean ± standard deviation; ROC AUC over the out-of-fold scores). Deterministic: lbfgs
on fixed inputs. One JSON line per variant, then a summary line.

    .venv/bin/python -m bench.violence_motion --js

Whether a browser computes the same integers, and at what cost: ``bench/violence_motion.mjs`` (the same algorithm in
plain JavaScript) runs under node on real frames of a few clips (one 1080p); prints whether its thumbnails and pair
counts equal numpy's, and its milliseconds per thumbnail (by frame size) and per pair.

    .venv/bin/python -m bench.violence_motion --paintings

How far other browsers' paintings of the same frames (``inference.trust.paintings``) move the thumbnails and the
descriptors (in units of each descriptor's spread over the dataset): what a verification tolerance would face.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.ml import motion
from inference.ml.clip_features import file_sha256, phase_offsets_ms
from inference.ml.pooled_training import balanced_accuracy, stratified_folds
from inference.ml.temporal import window_bounds
from inference.ml.training import binary_metrics, find_labelled_videos
from inference.ml.violence import PooledConfig, window_descriptors

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hydra_site.settings")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fight-surveillance"
CNN_STEP_MS = 250
FOLDS, SEED = 5, 0
EVERY_FRAME = 0  # burst offset meaning "every consecutive pair until the next sample"


@dataclass(frozen=True)
class Variant:
    name: str
    interval_ms: int
    window: int
    phases: int
    burst_ms: int | None  # None: no motion descriptors
    head: str  # "cnn", "motion", "concat" (one head on both), "average" (mean of two heads' logits), "stack"
    motion_c: float = 0.1
    cnn_c: float = 0.01


VARIANTS = (
    Variant("1/s CNN (shipped)", 1000, 3, 4, None, "cnn"),
    Variant("4/s CNN (shipped as interval-250)", 250, 8, 1, None, "cnn"),
    *(Variant(f"1/s motion, +{k} ms", 1000, 3, 4, k, "motion") for k in (40, 80, 120, 250)),
    Variant("1/s motion, every frame", 1000, 3, 4, EVERY_FRAME, "motion"),
    Variant("4/s motion, next sample (no extra frame)", 250, 8, 1, 250, "motion"),
    Variant("4/s motion, +40 ms", 250, 8, 1, 40, "motion"),
    Variant("4/s motion, every frame", 250, 8, 1, EVERY_FRAME, "motion"),
    *(
        Variant(f"1/s CNN + motion {burst}, {head}", 1000, 3, 4, k, head)
        for k, burst in ((120, "+120 ms"), (250, "+250 ms"), (EVERY_FRAME, "every frame"))
        for head in ("concat", "average", "stack")
    ),
    *(
        Variant(f"4/s CNN + motion {burst}, {head}", 250, 8, 1, k, head)
        for k, burst in ((250, "next sample"), (EVERY_FRAME, "every frame"))
        for head in ("concat", "average", "stack")
    ),
)
INNER_FOLDS, INNER_SEED = 4, 1  # "stack": the combination's weights are learned on the training folds only


@dataclass
class Clip:
    key: str
    label: int
    cnn: np.ndarray  # float32[G, 1280] at multiples of CNN_STEP_MS
    frame_ms: np.ndarray  # float64[N]
    thumbnails: np.ndarray  # uint8[N, 64, 64]
    consecutive: np.ndarray  # int64[N - 1, PAIR_COUNT_SIZE]: pair_counts(frame i, frame i + 1)

    def nearest(self, time_ms: float) -> int:
        return int(np.argmin(np.abs(self.frame_ms - time_ms)))  # earlier frame on ties


def thumbnails_cached(path: Path, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every frame's thumbnail (decoding is the slow part: cached by file), and the consecutive pairs' counts
    (cached by file and by the source of ``inference.ml.motion``, so a changed descriptor is recomputed)."""

    digest = file_sha256(path)
    frames_file = cache / f"{digest}-{motion.THUMBNAIL}.npz"
    code = hashlib.sha256(Path(motion.__file__).read_bytes()).hexdigest()[:12]
    counts_file = cache / f"{digest}-{motion.THUMBNAIL}-counts-{code}.npz"
    cache.mkdir(parents=True, exist_ok=True)
    if frames_file.exists():
        with np.load(frames_file) as data:
            frame_ms, thumbnails = data["frame_ms"], data["thumbnails"]
    else:
        frame_ms, thumbnails = motion.clip_thumbnails(path)
        with open(frames_file, "wb") as handle:
            np.savez(handle, frame_ms=frame_ms, thumbnails=thumbnails)
    if counts_file.exists():
        with np.load(counts_file) as data:
            return frame_ms, thumbnails, data["consecutive"]
    consecutive = np.stack([motion.pair_counts(a, b) for a, b in itertools.pairwise(thumbnails)])
    with open(counts_file, "wb") as handle:
        np.savez(handle, consecutive=consecutive)
    return frame_ms, thumbnails, consecutive


def sample_times(clip: Clip, interval_ms: int, phase_ms: float) -> np.ndarray:
    """As ``clip_features.sampled_features``: phase, phase + interval, ... up to the last CNN grid time."""
    last = (len(clip.cnn) - 1) * CNN_STEP_MS
    times = np.arange(phase_ms, last + 1e-6, interval_ms)
    return times if len(times) else np.asarray([0.0])


def sample_pairs(clip: Clip, time_ms: float, burst_ms: int, interval_ms: int) -> np.ndarray:
    """int64[P, PAIR_COUNT_SIZE]: the motion counts a player sampling at ``time_ms`` would send."""
    start = clip.nearest(time_ms)
    if burst_ms == EVERY_FRAME:
        end = clip.nearest(time_ms + interval_ms)
        if end > start:
            return clip.consecutive[start:end]
        partner = start + 1 if start + 1 < len(clip.frame_ms) else start - 1
    else:
        partner = clip.nearest(time_ms + burst_ms)
        if partner <= start:  # past the end of the clip: the frame before instead
            partner = start + 1 if start + 1 < len(clip.frame_ms) else start - 1
    if partner == start + 1:
        return clip.consecutive[start : start + 1]
    return motion.pair_counts(clip.thumbnails[start], clip.thumbnails[partner])[None]


def motion_window(pairs: list[np.ndarray]) -> np.ndarray:
    """Mean, spread, largest value and mean absolute change over a window's pair descriptors (time order)."""
    rows = np.concatenate(pairs)
    change = np.abs(np.diff(rows, axis=0)).mean(axis=0) if len(rows) > 1 else np.zeros(rows.shape[1])
    return np.concatenate([rows.mean(axis=0), rows.std(axis=0), rows.max(axis=0), change])


def descriptors(clip: Clip, variant: Variant, phase_ms: float) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Window descriptors of one sampling of a clip: CNN part [M, 3840] and motion part [M, 4K] (or None).

    A front-padded window (a clip shorter than the window) pools the motion of the samples it has.
    """
    times = sample_times(clip, variant.interval_ms, phase_ms)
    cnn = None
    if variant.head != "motion":
        features = clip.cnn[np.round(times / CNN_STEP_MS).astype(int)]
        cnn, _ = window_descriptors(features, PooledConfig(window=variant.window))
    moving = None
    if variant.burst_ms is not None:
        per_sample = [motion.pair_features(sample_pairs(clip, t, variant.burst_ms, variant.interval_ms)) for t in times]
        moving = np.stack(
            [motion_window(per_sample[start:end]) for start, end in window_bounds(len(times), variant.window, 1)]
        )
    return cnn, moving


@dataclass
class Standardised:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept


def fit(x: np.ndarray, y: np.ndarray, c: float) -> Standardised:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=SEED, solver="lbfgs")
    model.fit((x - mean) / scale, y)
    return Standardised(mean, scale, model.coef_[0], float(model.intercept_[0]))


def parts(variant: Variant, cnn: np.ndarray | None, moving: np.ndarray | None) -> list[tuple[np.ndarray, float]]:
    """The design matrices and their inverse L2 strengths: one for a single head, two for a combination."""
    if variant.head == "cnn":
        return [(cnn, variant.cnn_c)]
    if variant.head == "motion":
        return [(moving, variant.motion_c)]
    if variant.head == "concat":
        return [(np.concatenate([cnn, moving], axis=1), variant.cnn_c)]
    return [(cnn, variant.cnn_c), (moving, variant.motion_c)]


def fit_heads(described: list, clips: list[Clip], indices: np.ndarray, variant: Variant) -> list[Standardised]:
    """One head per design matrix, on every sampling phase of the given clips."""
    rows = [(parts(variant, *phase), clips[i].label) for i in indices for phase in described[i]]
    labels = np.concatenate([np.full(len(matrices[0][0]), label) for matrices, label in rows])
    return [
        fit(np.concatenate([matrices[j][0] for matrices, _ in rows]), labels, rows[0][0][j][1])
        for j in range(len(rows[0][0]))
    ]


def head_logits(heads: list[Standardised], variant: Variant, phase: tuple) -> np.ndarray:
    """float[windows, heads]: each head's window logits for one sampling of a clip."""
    return np.stack([head.logits(x) for head, (x, _) in zip(heads, parts(variant, *phase), strict=True)], axis=1)


def stacker(described: list, clips: list[Clip], train: np.ndarray, variant: Variant) -> Standardised:
    """Weights for the two heads' logits, fitted on out-of-fold logits of the training clips (inner folds)."""
    labels = np.asarray([clips[i].label for i in train])
    logits, targets = [], []
    for inner in stratified_folds(labels, INNER_FOLDS, INNER_SEED):
        held_out = train[inner]
        heads = fit_heads(described, clips, np.setdiff1d(train, held_out), variant)
        for i in held_out:
            for phase in described[i]:
                logits.append(head_logits(heads, variant, phase))
                targets += [clips[i].label] * len(logits[-1])
    combined = fit(np.concatenate(logits), np.asarray(targets), 1.0)
    # as an affine map of the raw logits, so it applies to them directly
    return Standardised(
        np.zeros(2),
        np.ones(2),
        combined.coef / combined.scale,
        combined.intercept - float(combined.coef / combined.scale @ combined.mean),
    )


def cross_validate(clips: list[Clip], variant: Variant) -> dict:

    offsets = phase_offsets_ms(variant.interval_ms, variant.phases)
    described = [[descriptors(clip, variant, phase) for phase in offsets] for clip in clips]
    labels = np.asarray([clip.label for clip in clips])
    scores = np.zeros(len(clips))
    per_fold, weights = [], []
    for test in stratified_folds(labels, FOLDS, SEED):
        train = np.setdiff1d(np.arange(len(clips)), test)
        heads = fit_heads(described, clips, train, variant)
        combine = stacker(described, clips, train, variant) if variant.head == "stack" else None
        if combine is not None:
            weights.append([round(float(w), 3) for w in combine.coef])
        for i in test:
            logits = head_logits(heads, variant, described[i][0])
            window = combine.logits(logits) if combine is not None else logits.mean(axis=1)
            scores[i] = float((1 / (1 + np.exp(-window))).max())
        per_fold.append(balanced_accuracy(labels[test], scores[test], 0.5))
    pooled = binary_metrics(labels, scores, 0.5)
    row = {
        "variant": variant.name,
        "balanced_accuracy_mean": round(float(np.mean(per_fold)), 4),
        "balanced_accuracy_std": round(float(np.std(per_fold)), 4),
        "balanced_accuracy_folds": [round(b, 4) for b in per_fold],
        "roc_auc": round(float(pooled["roc_auc"]), 4),
    }
    if weights:
        row["stack_weights_cnn_motion"] = weights
    return row


def load_clips(dataset: Path) -> list[Clip]:
    from django.conf import settings

    from inference import selectors
    from inference.ml.clip_features import cached_clip_features
    from inference.services.pooled_heads import clip_feature_cache

    model_version = selectors.active_model_version()
    if model_version is None:
        raise SystemExit("no active model version: run `manage.py build_models` first")
    artefact_dir = selectors.model_artefact_dir(model_version)
    motion_cache = Path(settings.HYDRA_MODEL_ROOT) / "clip-motion"
    clips = []
    for labelled in find_labelled_videos(dataset):
        cnn = cached_clip_features(labelled.path, artefact_dir, clip_feature_cache(), CNN_STEP_MS)
        frame_ms, thumbnails, consecutive = thumbnails_cached(labelled.path, motion_cache)
        clips.append(
            Clip(
                key=str(labelled.path.relative_to(dataset)),
                label=labelled.label,
                cnn=cnn.features,
                frame_ms=frame_ms,
                thumbnails=thumbnails,
                consecutive=consecutive,
            )
        )
    return clips


def dataset_frames(dataset: Path, clips_per_label: int = 2, frames_per_clip: int = 4) -> tuple[list, list]:
    """The first ``frames_per_clip`` frames of the first clips of each label plus the largest clip (1080p), painted
    as the browser paints them, and their consecutive pairs."""
    from inference.ml.frames import decode_frames_at

    labelled = find_labelled_videos(dataset)
    chosen = [f for label in (0, 1) for f in [f for f in labelled if f.label == label][:clips_per_label]]
    chosen.append(max(labelled, key=lambda f: f.path.stat().st_size))
    frames, pairs = [], []
    for clip in chosen:
        decoded = decode_frames_at(clip.path, [40 * k for k in range(frames_per_clip)], seek_ahead_ms=None)
        pairs += [(len(frames) + k, len(frames) + k + 1) for k in range(frames_per_clip - 1)]
        frames += list(decoded)
    return frames, pairs


def javascript_check(frames: list[np.ndarray], pairs: list[tuple[int, int]]) -> dict:
    """Run ``bench/violence_motion.mjs`` (node) on RGB frames: the same integers as numpy? how many ms per sample?"""
    with tempfile.TemporaryDirectory() as folder:
        spec = {"frames": [], "pairs": pairs}
        for index, rgb in enumerate(frames):
            (Path(folder) / f"{index}.rgb").write_bytes(np.ascontiguousarray(rgb).tobytes())
            spec["frames"].append({"file": f"{index}.rgb", "width": rgb.shape[1], "height": rgb.shape[0]})
        (Path(folder) / "frames.json").write_text(json.dumps(spec))
        script = Path(__file__).with_suffix(".mjs")
        output = subprocess.run(["node", str(script), folder], capture_output=True, text=True, check=True).stdout
    measured = json.loads(output)
    thumbnails = [motion.grey_thumbnail(rgb) for rgb in frames]
    counts = [motion.pair_counts(thumbnails[i], thumbnails[j]).tolist() for i, j in pairs]
    fastest: dict[str, float] = {}
    for rgb, ms in zip(frames, measured["thumbnailMs"], strict=True):
        size = f"{rgb.shape[1]}x{rgb.shape[0]}"
        fastest[size] = round(min(ms, fastest.get(size, ms)), 3)
    return {
        "frames": len(frames),
        "pairs": len(pairs),
        "thumbnails_identical": all(
            np.array_equal(np.asarray(js, dtype=np.uint8), py.ravel())
            for js, py in zip(measured["thumbnails"], thumbnails, strict=True)
        ),
        "pair_counts_identical": measured["counts"] == counts,
        "js_thumbnail_ms_by_frame_size": fastest,
        "js_pair_ms_median": round(float(np.median(measured["pairMs"])), 3),
        "wire_bytes_per_sample": motion.PAIR_COUNT_SIZE * 4,
    }


PAINTING_VARIANTS = (
    Variant("4/s motion, next sample (no extra frame)", 250, 8, 1, 250, "motion"),
    Variant("1/s motion, +250 ms", 1000, 3, 4, 250, "motion"),
)


def painted_clip(reference: Clip, path: Path, painting: str) -> Clip:
    """``reference`` with every frame painted as ``painting`` paints it (thumbnails and consecutive counts again)."""
    from inference.trust import paintings

    frames = paintings.painted_frames(path, [int(t) for t in reference.frame_ms], painting)
    thumbnails = np.stack([motion.grey_thumbnail(rgb) for rgb in frames])
    consecutive = np.stack([motion.pair_counts(a, b) for a, b in itertools.pairwise(thumbnails)])
    return Clip(reference.key, reference.label, reference.cnn, reference.frame_ms, thumbnails, consecutive)


def honest_painting_noise(dataset: Path, clips: list[Clip], every: int = 8) -> dict:
    """How far the browsers' other paintings of the same frames (``inference.trust.paintings``) move the motion
    descriptors and a motion head's window logits, against Chromium's software painting, on every ``every``-th clip.

    Descriptor moves are in units of that descriptor's spread over every consecutive pair of the dataset (what a
    standardised head sees); window logits are those of a motion head fitted on all clips (``PAINTING_VARIANTS``),
    compared with the spread of its logits over the dataset's windows and counted where its decision at 0.5 flips.
    """
    from inference.trust import paintings

    spread = np.std(np.concatenate([motion.pair_features(clip.consecutive) for clip in clips]), axis=0)
    spread[spread < 1e-9] = 1.0
    chosen = clips[::every]
    by_key = {str(f.path.relative_to(dataset)): f.path for f in find_labelled_videos(dataset)}
    painted = {name: [painted_clip(clip, by_key[clip.key], name) for clip in chosen] for name in paintings.PAINTINGS}
    reference = painted["chromium-software"]
    row: dict = {
        "clips": len(chosen),
        "pairs": int(sum(len(clip.consecutive) for clip in reference)),
        "software_painting_equals_cache": all(
            np.array_equal(a.thumbnails, b.thumbnails) for a, b in zip(reference, chosen, strict=True)
        ),
    }
    heads = {}
    for variant in PAINTING_VARIANTS:
        offsets = phase_offsets_ms(variant.interval_ms, variant.phases)
        described = [[descriptors(clip, variant, phase) for phase in offsets] for clip in clips]
        (head,) = fit_heads(described, clips, np.arange(len(clips)), variant)
        everywhere = np.concatenate([head.logits(phase[1]) for clip in described for phase in clip])
        heads[variant.name] = (variant, head, float(np.std(everywhere)))
    for name in paintings.ALTERNATIVES:
        levels = np.abs(
            np.concatenate([c.thumbnails for c in painted[name]]).astype(int)
            - np.concatenate([c.thumbnails for c in reference])
        )
        moved = (
            np.abs(
                np.concatenate([motion.pair_features(c.consecutive) for c in painted[name]])
                - np.concatenate([motion.pair_features(c.consecutive) for c in reference])
            )
            / spread
        )
        result = {
            "thumbnail_levels_max": int(levels.max()),
            "thumbnail_pixels_differing": round(float((levels > 0).mean()), 4),
            "pairs_identical": round(float((moved.max(axis=1) == 0).mean()), 4),
            "descriptor_move_in_spreads_p99": round(float(np.quantile(moved, 0.99)), 3),
            "descriptor_move_in_spreads_max": round(float(moved.max()), 3),
            "descriptor_with_largest_move": int(np.unravel_index(np.argmax(moved), moved.shape)[1]),
        }
        for variant_name, (variant, head, logit_spread) in heads.items():
            honest = np.concatenate([head.logits(descriptors(c, variant, 0)[1]) for c in reference])
            other = np.concatenate([head.logits(descriptors(c, variant, 0)[1]) for c in painted[name]])
            result[variant_name] = {
                "window_logit_move_max": round(float(np.abs(other - honest).max()), 3),
                "window_logit_move_p99": round(float(np.quantile(np.abs(other - honest), 0.99)), 3),
                "window_logit_spread": round(logit_spread, 3),
                "windows_flipped_at_0.5": f"{int(((other >= 0) != (honest >= 0)).sum())} of {len(honest)}",
            }
        row[name] = result
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--only", help="run only the variants whose name contains this text")
    parser.add_argument("--js", action="store_true", help="only check the JavaScript port: exactness and cost")
    parser.add_argument("--paintings", action="store_true", help="only measure other browsers' paintings' noise")
    args = parser.parse_args(argv)

    import django

    django.setup()
    if args.js:
        row = javascript_check(*dataset_frames(args.dataset))
        print(json.dumps(row))
        return [row]
    started = time.perf_counter()
    clips = load_clips(args.dataset)
    print(f"{len(clips)} clips, features and thumbnails in {time.perf_counter() - started:.1f} s", flush=True)
    if args.paintings:
        row = honest_painting_noise(args.dataset, clips)
        print(json.dumps(row))
        return [row]
    results = []
    for variant in VARIANTS:
        if args.only and args.only not in variant.name:
            continue
        row = cross_validate(clips, variant)
        results.append(row)
        print(json.dumps(row), flush=True)
    best = max(results, key=lambda row: row["balanced_accuracy_mean"])
    print(json.dumps({"best_variant": best["variant"], "best_balanced_accuracy_cv": best["balanced_accuracy_mean"]}))
    return results


if __name__ == "__main__":
    main()

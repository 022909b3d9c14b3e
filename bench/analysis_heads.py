"""Measure the server's analysis costs: training a temporal head, and running the heads per video minute.

    DATABASE_URL=postgres://... .venv/bin/python -m bench.analysis_heads [--minutes 10] [--clips 10]

Training: ``--clips`` synthetic clips per label (3 s each, erratic motion against calm scenes, in
RWF-2000's Fight/NonFight layout) are decoded with PyAV and run through the Keras CNN at 4 samples
per second (first run), read back from the PostgreSQL cache (second run), and an LSTM is trained
on them with a held-out split; its report's figures are printed. Inference: a video of
``--minutes`` minutes with stored features at 1 sample per second is analysed by every head
(nudity, and the just-trained violence head) through ``analyse_video``: load and dequantise the
features, run the heads, replace the per-frame scores and verdicts. Everything is written in one
transaction that is rolled back, and head weights go to a temporary model root.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hydra_site.settings")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CLIP_SECONDS = 3
TRAINING_INTERVAL_MS = 250


class Rollback(Exception):
    pass


def write_clips(root: Path, per_label: int) -> None:
    from videos.synthetic import write_video

    for i in range(per_label):
        size = {"width": 96 + 8 * (i % 5), "height": 72}
        write_video(root / "Fight" / f"f{i}.mp4", seconds=CLIP_SECONDS, fps=25, pattern="erratic", seed=i, **size)
        write_video(root / "NonFight" / f"c{i}.mp4", seconds=CLIP_SECONDS, fps=24 + i % 3, pattern="calm", **size)


def bench_training(folder: Path, model_version, per_label: int) -> None:
    from django.conf import settings

    from inference.ml.temporal import TemporalConfig
    from inference.ml.training import TrainingOptions
    from inference.services import training

    settings.HYDRA_SAMPLE_INTERVAL_MS = TRAINING_INTERVAL_MS
    video_minutes = 2 * per_label * CLIP_SECONDS / 60
    started = time.perf_counter()
    sequences = training.sequences_from_folder(folder, model_version)
    decode_seconds = time.perf_counter() - started
    started = time.perf_counter()
    training.sequences_from_folder(folder, model_version)
    cached_seconds = time.perf_counter() - started
    samples = sum(len(s.features) for s in sequences)
    config = TemporalConfig(window=4, stride=2)
    started = time.perf_counter()
    version = training.train_temporal_head_version(
        "violence", sequences, config, TrainingOptions(batch_size=8), source="bench"
    )
    total_seconds = time.perf_counter() - started
    report = version.metrics
    print(f"training data: {len(sequences)} clips, {video_minutes:.2f} video minutes, {samples} samples")
    print(
        f"  decode + CNN (first run): {decode_seconds:.1f} s = {decode_seconds / video_minutes:.1f} s per video minute"
    )
    print(f"  from the PostgreSQL cache (second run): {cached_seconds:.2f} s")
    print(
        f"  LSTM fit: {report['train_seconds']:.1f} s over {report['epochs_run']} epochs "
        f"(best {report['best_epoch']}); with report and ROC PNG {total_seconds:.1f} s"
    )
    for part in ("test_clips", "test_windows"):
        m = report[part]
        auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}"
        print(
            f"  held-out {part[5:]}: n={m['n']} accuracy {m['accuracy']:.3f} precision {m['precision']:.3f} "
            f"recall {m['recall']:.3f} ROC-AUC {auc} confusion {m['confusion_matrix']}"
        )


def bench_inference(model_version, minutes: int, repeats: int) -> None:
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from inference import heads, selectors
    from inference.ml.quantise import dequantise, quantise
    from inference.models import ClientSession, FrameFeature
    from inference.services import settlement
    from videos.models import Video

    settings.HYDRA_SAMPLE_INTERVAL_MS = 1000
    # The head trained at 4 samples/s is only timed here, at the site's 1 sample/s: its warning is expected.
    logging.getLogger("inference.services").setLevel(logging.ERROR)
    owner = get_user_model().objects.create_user("bench-analysis", password="x" * 16)
    video = Video.objects.create(owner=owner, title="bench", status="ready", fps=25.0, duration_ms=minutes * 60_000)
    session = ClientSession.objects.create(video=video, model_version=model_version, backend="wasm")
    times = selectors.expected_sample_times(video)
    codes = quantise(np.random.default_rng(0).uniform(0, 3, size=(len(times), 1280)).astype(np.float32))
    FrameFeature.objects.bulk_create(
        FrameFeature(
            video=video,
            model_version=model_version,
            session=session,
            sample_ms=ms,
            vector=codes[i].tobytes(),
            status=FrameFeature.Status.ACCEPTED,
        )
        for i, ms in enumerate(times)
    )
    settlement.analyse_and_announce(video)  # loads the runners (weights, Keras) once, as a warm worker has
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        settlement.analyse_and_announce(video)
        durations.append(time.perf_counter() - started)
    median = statistics.median(durations)
    print(f"inference: {minutes} video minutes, {len(times)} samples at 1/s, heads: nudity + violence")
    per_minute = median * 1000 / minutes
    print(f"  analyse_video (load, dequantise, heads, store scores + verdicts): {per_minute:.1f} ms per video minute")
    features = dequantise(codes)
    positions = np.arange(len(times))
    for head_version in selectors.active_head_versions(model_version):
        runner = heads.load_runner(head_version)
        started = time.perf_counter()
        for _ in range(repeats):
            runner.score(features, positions)
        per_minute = (time.perf_counter() - started) / repeats * 1000 / minutes
        print(f"  {head_version.head.category} head alone: {per_minute:.2f} ms per video minute")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--clips", type=int, default=10, help="clips per label for training")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import transaction

    from inference.services import registry

    model_version = registry.ensure_model_version()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        root.mkdir()
        os.symlink(Path(settings.HYDRA_MODEL_ROOT) / model_version.artefact_dir, root / model_version.artefact_dir)
        settings.HYDRA_MODEL_ROOT = root
        write_clips(Path(tmp) / "clips", args.clips)
        try:
            with transaction.atomic():
                registry.ensure_default_heads(model_version)
                bench_training(Path(tmp) / "clips", model_version, args.clips)
                bench_inference(model_version, args.minutes, args.repeats)
                raise Rollback
        except Rollback:
            pass


if __name__ == "__main__":
    main()

"""What scoring the most severe of agreeing replicas saves the server on honest watched videos, and what it costs.

    .venv/bin/python -m bench.severe_replica [--dataset ../shared/datasets/fight-surveillance] [--every 8]

Data: every ``--every``-th clip of the fight-surveillance set (Aktı, Tataroğlu and Ekenel, IPTA 2019), at the
site's sample times (1/s), painted as each honest browser paints a frame (``inference.trust.paintings``:
Chromium's software path, which the server reproduces exactly, GPU bilinear chroma, a float matrix, swscale),
through the CNN and uint8 as features travel. Each pair of distinct paintings stands for two honest,
independent viewers who agreed on every sample (the quorum of ``HYDRA_TRUST_REPLICAS`` = 2). The heads are the
shipped ones (violence: ``pooled_linear`` at 0.9; nudity: nsfwjs's class sum at 0.7).

Per pair and clip, the share of samples the server computes on a watched video for these reasons (spot checks
and the small-audience rule aside, unchanged):

* before: the borderline rules (violence windows within W x ``HYDRA_TRUST_MAX_WINDOW_DIFFERENCE`` logits of the
  threshold, ``verification.window_near_threshold``; nudity frames within ``HYDRA_TRUST_BORDERLINE_MARGIN``),
  plus the segments the server's own features flag (confirmed on the server's frames);
* after: no borderline rule where a sample holds the quorum; the samples of segments flagged on the most severe
  replicas (``HeadRunner.score_most_severe``), which the server computes before any case opens.

And the flags the severe choice adds before the server's confirmation (flagged on the severe replicas, not on
the server's features: false flags the server then withdraws) or loses (flagged by the server, not by the
pair: possible only for pairs without Chromium's painting; a decision at the margin of honest paintings).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hydra_site.settings")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fight-surveillance"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--every", type=int, default=8, help="paint every n-th clip")
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.conf import settings

    from inference import heads, selectors
    from inference.ml import cnn
    from inference.ml.quantise import dequantise, quantise
    from inference.ml.segments import SegmentPolicy, flagged_segments
    from inference.ml.training import find_labelled_videos
    from inference.ml.violence import load_pooled_head
    from inference.services.pooled_heads import shipped_directory
    from inference.services.registry import DEFAULT_SEGMENT_RULES, NUDITY, NUDITY_POSITIVE_CLASSES, VIOLENCE
    from inference.trust import paintings
    from inference.trust.verification import nudity_head, window_near_threshold
    from videos.media import probe

    model_version = selectors.active_model_version()
    if model_version is None:
        raise SystemExit("no active model version: run `manage.py build_models` first")
    model = cnn.cached_feature_extractor(str(selectors.model_artefact_dir(model_version)))
    interval = settings.HYDRA_SAMPLE_INTERVAL_MS
    violence = heads.PooledRunner(load_pooled_head(shipped_directory("violence", interval)))
    nsfw = nudity_head(model_version)
    nudity = heads.ClassSumRunner(nsfw.predict, nsfw.class_names, tuple(NUDITY_POSITIVE_CLASSES))
    runners = {"violence": (violence, VIOLENCE.threshold), "nudity": (nudity, NUDITY.threshold)}
    margin = settings.HYDRA_TRUST_BORDERLINE_MARGIN

    def travelled(features: np.ndarray) -> np.ndarray:
        return dequantise(quantise(features))

    def flagged_samples(times: list[int], scores: np.ndarray, threshold: float, duration_ms: int) -> set[int]:
        policy = SegmentPolicy(
            threshold=threshold,
            edge_threshold=max(0.0, threshold - DEFAULT_SEGMENT_RULES["edge_margin"]),
            max_gap_ms=DEFAULT_SEGMENT_RULES["max_gap_ms"],
            min_length_ms=DEFAULT_SEGMENT_RULES["min_length_ms"],
        )
        segments = flagged_segments(times, scores, span_ms=interval, duration_ms=duration_ms, policy=policy)
        return {i for i, t in enumerate(times) if any(start <= t <= end for start, end, _ in segments)}

    def borderline(scores: dict[str, np.ndarray], n: int) -> set[int]:
        near = {i for i, s in enumerate(scores["nudity"]) if abs(float(s) - NUDITY.threshold) <= margin}
        reach = violence.head.config.window - 1
        for i, s in enumerate(scores["violence"]):
            if window_near_threshold(violence, float(s), VIOLENCE.threshold):
                near.update(range(max(0, i - reach), min(n, i + reach + 1)))
        return near

    totals = {label: {"samples": 0, "before": 0, "after": 0, "before_borderline": 0} for label in (0, 1)}
    flags = {name: {"server": 0, "severe": 0, "extra": 0, "extra_samples": 0, "lost": 0} for name in runners}
    pairs = list(itertools.combinations(paintings.PAINTINGS, 2))
    clips = find_labelled_videos(args.dataset)[:: args.every]
    for labelled in clips:
        duration_ms = probe(labelled.path, max_duration_seconds=settings.HYDRA_MAX_DURATION_SECONDS).duration_ms
        times = list(range(0, duration_ms, interval))
        painted = {
            name: travelled(cnn.compute_features(model, paintings.painted_frames(labelled.path, times, name)))
            for name in paintings.PAINTINGS
        }
        positions = np.arange(len(times))
        server = {
            name: runner.score(painted["chromium-software"], positions).scores for name, (runner, _) in runners.items()
        }
        server_flagged = {
            name: flagged_samples(times, server[name], threshold, duration_ms)
            for name, (_, threshold) in runners.items()
        }
        before = borderline(server, len(times)) | set().union(*server_flagged.values())
        for pair in pairs:
            replicas = [np.stack([painted[p][i] for p in pair]) for i in range(len(times))]
            severe = {
                name: runner.score_most_severe(replicas, positions).scores for name, (runner, _) in runners.items()
            }
            after: set[int] = set()
            for name, (_, threshold) in runners.items():
                on_severe = flagged_samples(times, severe[name], threshold, duration_ms)
                after |= on_severe
                counts = flags[name]
                counts["server"] += bool(server_flagged[name])
                counts["severe"] += bool(on_severe)
                if on_severe and not server_flagged[name]:
                    counts["extra"] += 1
                    counts["extra_samples"] += len(on_severe)
                counts["lost"] += bool(server_flagged[name]) and not on_severe
            share = totals[labelled.label]
            share["samples"] += len(times)
            share["before"] += len(before)
            share["before_borderline"] += len(borderline(server, len(times)))
            share["after"] += len(after)
    videos = len(clips) * len(pairs)
    samples = sum(share["samples"] for share in totals.values())
    report = {
        "clips": len(clips),
        "pairs": [list(p) for p in pairs],
        "watched_videos": videos,
        "samples": samples,
        **{
            f"{label}_server_share": {
                "samples": share["samples"],
                "before": round(share["before"] / share["samples"], 4),
                "before_borderline_only": round(share["before_borderline"] / share["samples"], 4),
                "after": round(share["after"] / share["samples"], 4),
            }
            for label, share in zip(("harmless", "violent"), totals.values(), strict=True)
        },
        "flags": {
            name: {
                **counts,
                "extra_per_video": round(counts["extra"] / videos, 4),
                "extra_server_share": round(counts["extra_samples"] / samples, 4),
            }
            for name, counts in flags.items()
        },
    }
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()

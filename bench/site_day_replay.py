"""A scaled-down site day, driven through the real stack and set against the model's prediction for it.

    python -m bench.site_day_replay          # 1.5-3 minutes on 2 cores; prices with docs/bench-results.json

The day is ``bench.site_day.draw_day`` of ``site_day_params.REPLAY_DAY`` (same model, same seed, fewer and
shorter uploads): each upload becomes a published video on the bench's own stack (its PostgreSQL, Redis,
daphne and a Celery worker, ``bench.hydra_path``), with the shipped heads registered as ``manage.py
build_models`` registers them (the violence head active unless the parameters say otherwise). Time runs
``REPLAY_TIME_COMPRESSION`` times faster: the trust settings in seconds (the coverage deadline's base, step per
clean upload and cap, its slack and per-sample budget, the arrival window) are divided by it in the servers'
environment. Every upload is a fresh uploader's, ready at once with no clean upload behind it, so
``moderation.services.start_coverage_deadline`` gives each the base deadline, as ``REPLAY_DAY``'s uploader mix
does in the model (the audience pull-back then moves nothing). New devices are on probation by replicas in
both: their agreement counts beside a seeded returning device or on a small audience. Every visit that
arrives before its upload's countdown is driven by the load generator at its compressed time
(``bench.load``'s schedule): returning devices with long records, new devices, the harness's liars
(random features), each sending what its browser computes while it stays. Then the deadline runs out on
the worker and the CPU of every server process is read (``hydra_path.ServerClock``).

What is not driven but priced with the component costs, as the model prices it: visits after coverage
(extra viewers: the page's decision and an audit draw), the hidden seeker's Range requests, and flag
confirmation (the bench clip flags nothing). The measured total is compared with the model's total for the
same events, so the model is checked against the servers for what is driven.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench import site_day
from bench.hydra_path import (
    NETWORKS,
    ServerClock,
    Servers,
    _close_db,
    _setup_site,
    make_videos,
    recomputed_samples,
    seed_returning_devices,
    settle,
    time_to_verdict,
)
from bench.load import LoadConfig, device_id, viewer_address
from bench.measure import REPO_ROOT, BenchError, last_words, run_isolated
from bench.private_servers import private_stack
from bench.report import lookup
from bench.run import CLIP, unit_costs
from bench.site_day_params import REPLAY_DAY, REPLAY_MAX_DURATION_S, REPLAY_TIME_COMPRESSION
from bench.stack import ORIGIN

RESULTS = REPO_ROOT / "docs" / "bench-results.json"
# Recomputation reasons (inference.models.Recomputation.Reason) against the model's reasons for server frames.
MODEL_REASONS_OF = {
    "spot_check": ("small_audience", "probation", "spot_checks_returning"),
    "borderline": ("window_guard", "nudity_borderline"),
    "dispute": ("disputes",),
    "quarantine": (),
    "coverage": ("fallback_unwatched", "fallback_partly_covered"),
    "flag": ("flag_confirmation",),
}
# What the replay drives through the servers; the other reasons are priced only.
DRIVEN = ("handshakes", "messages", "settlement", "analysis", *site_day.SERVER_FRAME_REASONS)
NOT_DRIVEN = ("flag_confirmation",)


def compressed_settings(rules: site_day.TrustRules, compression: float) -> dict[str, str]:
    """The trust settings in seconds, ``compression`` times shorter, for the servers' environment."""
    step_s = rules.coverage_seconds_per_clean_upload
    return {
        "HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS": str(round(rules.coverage_deadline_s / compression)),
        "HYDRA_TRUST_COVERAGE_MAX_DEADLINE_SECONDS": str(round(rules.coverage_max_deadline_s / compression)),
        "HYDRA_TRUST_COVERAGE_SECONDS_PER_CLEAN_UPLOAD": str(round(step_s / compression)),
        "HYDRA_TRUST_COVERAGE_SLACK_SECONDS": str(round(rules.coverage_slack_s / compression)),
        "HYDRA_TRUST_SERVER_SECONDS_PER_SAMPLE": str(rules.server_seconds_per_sample / compression),
        "HYDRA_TRUST_ARRIVAL_WINDOW_SECONDS": str(rules.arrival_window_s / compression),
    }


def site_rules() -> site_day.TrustRules:
    """The site's rules at its defaults (read in a fresh process: this one's Django is the scratch stack's)."""
    rules = run_isolated("bench.hydra_path:trust_rules", timeout=120)
    rules.pop("process")
    return replace(site_day.TrustRules(**rules), max_duration_s=REPLAY_MAX_DURATION_S)


def schedule(
    day: list[site_day.Upload], model: dict[str, Any], slugs: list[str], rules, params, prefix: str, octet: int
) -> tuple[list[dict], int]:
    """Every visit whose page analyses (the model's ``analysing_visits``: before the countdown, the video not yet
    covered), at compressed time; returning devices get the first device numbers (their records are seeded)."""
    entries = []
    for upload, slug, indices in zip(day, slugs, model["analysing_visits"], strict=True):
        for index in indices:
            visit = upload.visits[index]
            entries.append(
                {
                    "slug": slug,
                    "sample_count": upload.samples,
                    "start_s": visit.arrival_s / REPLAY_TIME_COMPRESSION,
                    "returning": not visit.new_device and not visit.malicious,
                    "behaviour": "random" if visit.malicious else "honest",
                    "samples": site_day.deliverable(visit, upload, rules, params),
                }
            )
    returning = [entry for entry in entries if entry["returning"]]
    others = [entry for entry in entries if not entry["returning"]]
    for index, entry in enumerate(returning + others):
        entry["device_id"] = device_id(prefix, index)
        entry["ip"] = viewer_address(octet, index)
        del entry["returning"]
    return sorted(returning + others, key=lambda entry: entry["start_s"]), len(returning)


def published_videos(day: list[site_day.Upload], clip: dict, media_root: Path, uploader: str) -> list[str]:
    """One published video per upload, its duration the upload's samples (the rendition is the longest clip).

    ``uploader`` must have no clean upload yet (the bench's own uploader has one: the warm-up video, published
    once analysed clean), so that every upload gets the base deadline, as ``REPLAY_DAY``'s uploader mix says.
    """
    interval_ms = 1000
    slugs = []
    for upload in day:
        duration_ms = min(clip["duration_ms"], upload.samples * interval_ms)
        slugs += make_videos(1, clip | {"duration_ms": duration_ms}, media_root, uploader=uploader)
    return slugs


def quarantined_liars(slugs: list[str], entries: list[dict]) -> dict[str, int]:
    """Sessions of the day's liars and of its honest viewers that the trust layer quarantined."""
    from inference.models import ClientSession

    liars = {entry["device_id"] for entry in entries if entry["behaviour"] != "honest"}
    caught = set(
        ClientSession.objects.filter(video__slug__in=slugs, state=ClientSession.State.QUARANTINED).values_list(
            "device_id", flat=True
        )
    )
    _close_db()
    return {"liars": len(liars), "liars_caught": len(caught & liars), "honest_caught": len(caught - liars)}


def priced(costs: site_day.UnitCosts, measured: dict[str, Any]) -> dict[str, float]:
    """The replay's own events priced with the component costs, by the model's reasons where they map."""
    frames = measured["recomputed_samples"]
    spot = costs.spot_check
    return {
        "handshakes": measured["load"]["connected"] * costs.connection,
        "messages": measured["load"]["messages"] * costs.message,
        "settlement": measured["load"]["frames_accepted"] * costs.settlement_per_feature,
        "spot_checks (small audience, probation, returning)": frames.get("spot_check", 0) * spot,
        "borderline (window guard)": frames.get("borderline", 0) * spot,
        "disputes and quarantine": (frames.get("dispute", 0) + frames.get("quarantine", 0)) * spot,
        "fallback at the deadline": frames.get("coverage", 0) * costs.fallback_frame,
    }


def model_frames_by_recomputation_reason(model: dict[str, Any]) -> dict[str, float]:
    frames = model["server_frames_by_reason"]
    return {reason: sum(frames.get(name, 0.0) for name in names) for reason, names in MODEL_REASONS_OF.items()}


def measure(costs: dict[str, float] | None = None, settle_timeout_s: float = 180.0) -> dict[str, Any]:
    """Drive the scaled day; returns the measured server CPU, the events, and the model's prediction."""
    clip = run_isolated("bench.server_only:rendition_codes", timeout=600, seconds=int(REPLAY_MAX_DURATION_S), **CLIP)
    params = REPLAY_DAY
    rules = site_rules()
    unit = unit_costs_from(costs)
    if unit is None:
        raise BenchError(f"no component costs to price the model with (run the Hydra path, or keep {RESULTS})")
    model = site_day.simulate(unit, rules, params)
    with private_stack(**compressed_settings(rules, REPLAY_TIME_COMPRESSION)) as stack:
        _setup_site(stack)
        from inference import selectors
        from inference.services.pooled_heads import ensure_shipped_heads
        from videos.models import Video
        from videos.signals import video_ready

        model_version = selectors.active_model_version()
        if params.violence_head_active:
            ensure_shipped_heads(model_version)
        active_heads = sorted(str(version) for version in selectors.active_head_versions(model_version))
        day = site_day.draw_day(params, rules)
        servers = Servers(stack, 1)
        daphne, url = servers.daphnes[0]
        # A running site's worker has its models loaded: one held video analysed first, unreported.
        time_to_verdict(
            stack, clip, servers.daphnes[0], servers.worker, viewers=0, pace_ms_per_frame=None, timeout_s=120
        )
        prefix, octet = uuid.uuid4().hex[:8], next(NETWORKS)
        slugs = published_videos(day, clip, stack.media_root, uploader=f"site-day-{prefix}")
        entries, returning = schedule(day, model, slugs, rules, params, prefix, octet)
        seed_returning_devices(prefix, returning, octet)
        config = LoadConfig(
            urls=[url],
            slugs=[],
            times=clip["times"],
            codes_path=clip["codes_path"],
            clients=len(entries),
            deadline_s=60.0,
            origin=ORIGIN,
            schedule=entries,
        )
        last_deadline = max(site_day.countdown_s(upload, rules) for upload in day) / REPLAY_TIME_COMPRESSION
        clock = ServerClock(stack, [daphne], servers.worker)
        clock.begin()
        started = time.perf_counter()
        for video in Video.objects.filter(slug__in=slugs):
            video_ready.send(sender=Video, video=video)
        _close_db()
        completed = subprocess.run(
            [sys.executable, "-m", "bench.load", json.dumps(asdict(config))],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=last_deadline + 300,
            check=False,
        )
        if completed.returncode != 0:
            raise BenchError(f"load generator failed: {last_words(completed.stderr)}\n{completed.stderr[-2000:]}")
        load = json.loads(completed.stdout.strip().splitlines()[-1])
        time.sleep(max(0.0, started + last_deadline + 1 - time.perf_counter()))
        settled = settle(stack, [daphne, servers.worker], slugs, settle_timeout_s, require_verdicts=True)
        cpu = clock.elapsed()
        wall = time.perf_counter() - started
        measured = {
            "load": load,
            **settled,
            "server_cpu_s": cpu,
            "wall_s": wall,
            "recomputed_samples": recomputed_samples(slugs),
            "liar_sessions_quarantined": quarantined_liars(slugs, entries),
            "active_heads": active_heads,
        }
    return measured | {
        "params": asdict(params),
        "time_compression": REPLAY_TIME_COMPRESSION,
        "uploads": len(day),
        "samples": sum(upload.samples for upload in day),
        "visits_driven": len(entries),
        "returning_visits_driven": returning,
        "compared": compare(measured, model, unit),
    }


def unit_costs_from(costs: dict[str, float] | None) -> site_day.UnitCosts | None:
    """The component costs given (by ``bench.run``, from the same run), else those of the last recorded run."""
    if costs is not None:
        return site_day.UnitCosts(**costs)
    return unit_costs(json.loads(RESULTS.read_text())) if RESULTS.exists() else None


def compare(measured: dict[str, Any], model: dict[str, Any], unit: site_day.UnitCosts) -> dict[str, Any]:
    """The model's prediction for the same day against what the servers did: server frames by reason, visits,
    and CPU (the model's driven reasons against the servers' measured total)."""
    frames = Counter(measured["recomputed_samples"])
    by_reason = model["hydra_cpu_ms_by_reason"]
    model_driven = sum(by_reason[name] for name in DRIVEN if name not in NOT_DRIVEN)
    measured_ms = measured["server_cpu_s"]["total"] * 1000
    events = priced(unit, measured)
    server_only_ms = model["samples"] * unit.server_only_frame
    return {
        "measured_server_frames_by_reason": dict(frames),
        "model_server_frames_by_reason": model_frames_by_recomputation_reason(model),
        "model_visits": model["visits"],
        "measured_visits": {"driven": measured["load"]["visits"], "connected": measured["load"]["connected"]},
        "model_cpu_ms_by_reason": by_reason,
        "measured_events_priced_ms": events,
        "measured_cpu_ms": measured_ms,
        "measured_cpu_ms_by_process": {name: value * 1000 for name, value in measured["server_cpu_s"].items()},
        "model_cpu_ms_driven": model_driven,
        "measured_over_model": measured_ms / model_driven if model_driven else None,
        "model_offload_ratio_site_day": model["offload_ratio_site_day"],
        "replay_offload_ratio_driven": server_only_ms / measured_ms if measured_ms else None,
        "model_offload_ratio_driven": server_only_ms / model_driven if model_driven else None,
        "server_frames_per_sample_measured": sum(frames.values()) / model["samples"],
        "server_frames_per_sample_model": model["server_computed_frames_per_sample"],
        "unit_costs_ms": asdict(unit),
    }


def main() -> None:
    result = measure()
    compared = result["compared"]
    print(
        f"replay: {result['uploads']} uploads, {result['samples']} samples, {result['visits_driven']} visits driven "
        f"in {result['wall_s']:.0f} s; server frames measured {compared['measured_server_frames_by_reason']}, "
        f"model {lookup(compared, 'model_server_frames_by_reason')}; CPU measured/model "
        f"{lookup(compared, 'measured_over_model')}",
        file=sys.stderr,
    )
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()

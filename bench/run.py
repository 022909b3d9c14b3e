"""Hydra's benchmarks: the offload claim, measured side by side in one run.

    python -m bench.run --quick     # about 20 minutes on 2 shared cores; last line is one JSON object
    python -m bench.run --full      # every figure, plots and results written into docs/

Sections (each in its own process where memory matters; a section that fails is reported as
null with the reason, never guessed):
  server_only  (1a) today's Keras path: decode + RGB + Keras CNN + heads, CPU ms per frame, with the
               cheapest RGB conversion and the browser-exact one (what verification pays); also
               the Keras speed, (4) bytes on the wire and (6) the quantisation error, on the same frames
  fair         (1a, fair) the cheapest correct server-only path: TFLite/XNNPACK per thread count, keyframe
               decode scaled straight to 224 or the reference resize, samples handed over by the
               transcoder's decode pass (bench.fair_server): the headline ratio's numerator
  model_size   (full only) the fair CNN cost of MobileNetV2 and of nsfwjs's InceptionV3
  hydra_path   (1b) websocket -> validate -> PostgreSQL -> heads (+ verification), server CPU per
               frame on real daphne / Celery / PostgreSQL / Redis processes (the bench's own PostgreSQL
               cluster and Redis, every process counted); component costs; (2) ingest capacity;
               (5) time to verdict
  browser      (3) the CNN chunk in headless Chromium per TF.js backend and LiteRT.js, side by side with
               the server's fastest single-thread path, TFLite/XNNPACK on one thread (bench.browser_cnn)
  page ready   how soon a player page's model is loaded and warmed, cold and warm (bench.page_ready)
  playback     what the analysis costs the viewer: dropped frames, long tasks, CPU, seeker bytes (bench.playback)
  site day     priced from the measured component costs (bench.site_day), with money and the projection; in
               the full profile also a scaled-down day driven through the real stack and set against the
               model's prediction for it (bench.site_day_replay)
Needs DATABASE_URL (only to describe the machine's PostgreSQL) and REDIS_URL; the Hydra path starts its own.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from bench import machine, report, site_day
from bench.measure import BenchError, median, run_isolated
from bench.report import lookup


@dataclass(frozen=True)
class Profile:
    name: str
    clip_seconds: int
    repeats: int
    cost_videos: int
    cost_repeats: int
    ingest_clients: tuple[int, ...]
    daphne_counts: tuple[int, ...]
    ingest_deadline_s: float
    verdict_viewers: tuple[int, ...]
    browser_frames: int
    browser_backends: tuple[str, ...]
    variants: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    first_time_viewers: bool = False
    component_viewers: int = 20
    model_size: bool = False
    ingest_repeats: int = 1  # bench.ingest: 100 viewers into one daphne process, unpaced and paced at 10,000 frames/s
    site_day_replay: bool = False  # bench.site_day_replay: about 3 minutes on 2 cores, so the full profile only


QUICK = Profile(
    name="quick",
    clip_seconds=60,
    repeats=3,
    cost_videos=5,
    cost_repeats=2,
    ingest_clients=(100,),
    daphne_counts=(1,),
    ingest_deadline_s=8,
    verdict_viewers=(),
    browser_frames=4,
    browser_backends=("wasm", "litert"),
    first_time_viewers=True,
    component_viewers=20,
)
FULL = Profile(
    name="full",
    clip_seconds=60,
    repeats=5,
    cost_videos=10,
    cost_repeats=3,
    ingest_clients=(10, 100, 500),
    daphne_counts=(1, 2),
    ingest_deadline_s=40,
    verdict_viewers=(0, 1, 2, 5),
    browser_frames=8,
    browser_backends=("wasm", "litert", "webgl", "cpu"),
    variants=(
        # What bounds the ratio at the defaults: the spot-check floor (1/f) and the second replica of every sample.
        ("spot-check floor 1 %", (("HYDRA_TRUST_SPOT_CHECK_FLOOR", "0.01"),)),
        ("spot-check floor 0.5 %", (("HYDRA_TRUST_SPOT_CHECK_FLOOR", "0.005"),)),
        ("one viewer per sample (no replica)", (("HYDRA_TRUST_REPLICAS", "1"),)),
    ),
    first_time_viewers=True,
    component_viewers=50,
    model_size=True,
    ingest_repeats=3,
    site_day_replay=True,
)
# The site-day model at other audiences: mean first-day views per upload (the default is SiteDayParams's).
SITE_DAY_VIEWS_PER_UPLOAD = (8.0, 80.0, 800.0)
CLIP = {"width": 1280, "height": 720}
# bench.ingest: each viewer sends this many samples; paced, each computes a frame in this many ms
# (100 viewers x 100 frames/s: the 10,000 frames per second, offered as browsers would offer it).
INGEST_SAMPLES = 600
INGEST_PACE_MS_PER_FRAME = 10.0
# A failed section's note: its error's first line (for a subprocess, the last lines of its stderr).
NOTE_CHARS = 600
# The last line of `make bench-quick` carries at least these; scripts and the issue read them by name.
HEADLINE_KEYS = (
    "offload_ratio",
    "ingest_fps_100_clients",
    "ack_p99_ms_100_clients",
    "ingest_frames_per_second",
    "ingest_ack_p99_ms",
    "browser_wasm_ms_per_frame",
    "browser_ms_per_frame",
    "server_fast_ms_per_frame",
    "keras_ms_per_frame",
    "bytes_per_frame",
    "offload_ratio_fair",
    "offload_ratio_site_day",
    "offload_ratio_watched",
    "unwatched_share",
    "server_only_fair_cpu_ms_per_frame",
    "extra_view_server_cpu_ms",
    "new_device_visit_server_cpu_ms",
    "spot_check_server_cpu_ms",
    "browser_model_ready_ms_warm",
    "browser_model_ready_ms_cold",
    "playback_dropped_frames_added",
    "analysis_cpu_share",
    "seeker_bytes_per_visit",
)


def _section(name: str, target: str, timeout: float, **kwargs) -> dict[str, Any]:
    started = time.perf_counter()
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    try:
        result = run_isolated(target, timeout=timeout, **kwargs)
    except (BenchError, OSError, TimeoutError) as exc:
        result = {"error": str(exc).splitlines()[0][:NOTE_CHARS], "error_detail": str(exc)[-2000:]}
    except Exception as exc:  # a subprocess timeout, a bad result: the other sections still run
        result = {"error": f"{type(exc).__name__}: {exc}"[:NOTE_CHARS]}
    result["section_wall_s"] = time.perf_counter() - started
    print(f"[bench] {name} done in {result['section_wall_s']:.0f} s", file=sys.stderr, flush=True)
    return result


def measure(profile: Profile) -> dict[str, Any]:
    results: dict[str, Any] = {"profile": asdict(profile), "machine": machine.describe(os.environ.get("DATABASE_URL"))}
    results["server_only"] = _section(
        "server-only path (1a, 4, 6)",
        "bench.server_only:measure",
        timeout=600,
        seconds=profile.clip_seconds,
        repeats=profile.repeats,
        **CLIP,
    )
    results["fair"] = _section(
        "fair server-only paths (1a, fair)",
        "bench.fair_server:measure",
        timeout=900,
        seconds=profile.clip_seconds,
        repeats=profile.repeats,
        **CLIP,
    )
    results["recompute"] = _section(
        "server recomputations (issue 15, 4)",
        "bench.recompute:measure",
        timeout=900,
        seconds=profile.clip_seconds,
        repeats=profile.repeats,
        **CLIP,
    )
    if profile.model_size:
        results["model_size"] = _section(
            "CNN cost by model size", "bench.fair_server:measure_model_size", timeout=1200, repeats=profile.repeats
        )
    results["browser"] = _section(
        "browser CNN (3)",
        "bench.browser_cnn:measure",
        timeout=600,
        frames=profile.browser_frames,
        backends=list(profile.browser_backends),
    )
    results["page_ready"] = _section("page ready (issue 17)", "bench.page_ready:measure", timeout=600, warm_visits=3)
    results["playback"] = _section(
        "playback with and without analysis (issue 17)", "bench.playback:measure", timeout=1200, real_clips=4
    )
    results["hydra_path"] = _section(
        "Hydra path (1b, 2, 5)",
        "bench.hydra_path:measure",
        timeout=3600,
        clip_seconds=profile.clip_seconds,
        clip_width=CLIP["width"],
        clip_height=CLIP["height"],
        cost_videos=profile.cost_videos,
        cost_repeats=profile.cost_repeats,
        ingest_clients=list(profile.ingest_clients),
        daphne_counts=list(profile.daphne_counts),
        deadline_s=profile.ingest_deadline_s,
        verdict_viewers=list(profile.verdict_viewers),
        pace_ms_per_frame=lookup(results, "browser", "backends", "wasm", "ms_per_frame"),
        variants={name: dict(settings) for name, settings in profile.variants},
        first_time_viewers=profile.first_time_viewers,
        component_viewers=profile.component_viewers,
    )
    for name, pace in (("ingest", 0.0), ("ingest_paced", INGEST_PACE_MS_PER_FRAME)):
        results[name] = _section(
            f"ingest writer, 100 viewers, {'paced' if pace else 'unpaced'} (issue 15, item 3)",
            "bench.ingest:measure",
            timeout=1800,
            clients=100,
            samples=INGEST_SAMPLES,
            repeats=profile.ingest_repeats,
            pace_ms_per_frame=pace,
        )
    results["machine"]["load_average_at_end"] = machine.load_average()
    results["site_day"] = site_day_section(results)
    if profile.site_day_replay:
        costs = unit_costs(results)
        results["site_day_replay"] = _section(
            "site day replayed on the real stack (issue 14, item 3)",
            "bench.site_day_replay:measure",
            timeout=1200,
            costs=asdict(costs) if costs else None,
        )
    results["summary"] = summarise(results)
    return results


def _ingest(results: dict, clients: int, daphnes: int = 1) -> dict | None:
    for run in lookup(results, "hydra_path", "ingest_runs") or []:
        if run["clients"] == clients and run["daphne_processes"] == daphnes:
            return run
    return None


def ingest_knee(runs: list[dict], growth: float = 1.1) -> int | None:
    """The client count after which throughput grows by less than ``growth``x: the saturation point."""
    ordered = sorted(runs, key=lambda run: run["clients"])
    for before, after in itertools.pairwise(ordered):
        if after["frames_per_s"] < growth * before["frames_per_s"]:
            return before["clients"]
    return None


def hydra_cpu_ms_per_frame(cost_runs: list[dict]) -> float | None:
    """Median server CPU per analysed frame over the runs that settled."""
    per_frame = [
        run["server_cpu_ms_per_analysed_frame"]["total"]
        for run in cost_runs
        if run.get("settled") and run.get("server_cpu_ms_per_analysed_frame")
    ]
    return median(per_frame) if per_frame else None


def unit_costs(results: dict[str, Any]) -> site_day.UnitCosts | None:
    """The site-day model's prices, all from this run; None if any is missing.

    A component measured as a difference of two runs can come out slightly negative on a busy
    machine (10 ms clock ticks); it is priced at zero then, never below.
    """
    rows = lookup(results, "hydra_path", "components", "rows") or {}
    values = {
        "connection": lookup(rows, "connection_with_handshake", "total"),
        "message": lookup(rows, "message", "daphne"),
        "settlement_per_feature": lookup(rows, "settlement_per_feature", "worker_postgres_redis"),
        "spot_check": lookup(rows, "spot_check", "total"),
        "fallback_frame": lookup(rows, "fallback_frame", "total"),
        "range_request": lookup(rows, "range_request", "total"),
        "extra_viewer": lookup(rows, "extra_viewer_visit", "total"),
        "server_only_frame": lookup(results, "fair", "cheapest_cpu_ms_per_frame"),
        "range_bytes": lookup(rows, "range_request", "bytes"),
        "analysis": lookup(rows, "analysis_per_video", "worker"),
    }
    if any(value is None for value in values.values()):
        return None
    # The settlement row is a cost run's backend CPU per sample, its video's analysis included: priced apart.
    values["settlement_per_feature"] -= values["analysis"] / lookup(results, "hydra_path", "clip", "samples")
    return site_day.UnitCosts(**{name: max(0.0, float(value)) for name, value in values.items()})


def model_size_ratios(results: dict[str, Any], day: dict[str, Any] | None) -> dict[str, Any] | None:
    """Offload ratios if the CNN were each measured model: the server-only path pays the CNN on every sample,
    Hydra only on the frames its server computes (spot checks, disputes, fallback, flag confirmation).

    Modelled from measured CNN costs: assumes the server's own recomputations run the CNN at the fair
    runtime's cost, and that everything else (sockets, storage, settlement) does not depend on the model.
    """
    sizes = lookup(results, "model_size")
    fair = lookup(results, "fair", "cheapest_cpu_ms_per_frame")
    hydra = hydra_cpu_ms_per_frame(lookup(results, "hydra_path", "cost_runs") or [])
    runs = lookup(results, "hydra_path", "cost_runs") or []
    shares = [run["server_share"] for run in runs if run.get("settled") and run.get("server_share") is not None]
    if not sizes or "error" in sizes or fair is None or hydra is None or not shares:
        return None
    base = sizes["mobilenet_v2"]["cheapest_cnn_cpu_ms_per_frame"]
    out = {}
    for name, model in sizes.items():
        if not isinstance(model, dict) or "cheapest_cnn_cpu_ms_per_frame" not in model:
            continue
        delta = model["cheapest_cnn_cpu_ms_per_frame"] - base
        server_only = fair + delta
        figures = {
            "cnn_cpu_ms_per_frame": model["cheapest_cnn_cpu_ms_per_frame"],
            "parameters": model["parameters"],
            "server_only_cpu_ms_per_frame": server_only,
            "offload_ratio_ideal_audience": server_only / (hydra + median(shares) * delta),
        }
        if day is not None:
            per_sample = day["hydra_cpu_ms_per_sample"] + day["server_computed_frames_per_sample"] * delta
            figures["offload_ratio_site_day"] = server_only / per_sample
        out[name] = figures
    return out


def site_day_section(results: dict[str, Any]) -> dict[str, Any]:
    """The site-day model priced with this run's costs, its sensitivity to the audience, money, projection."""
    costs = unit_costs(results)
    rules = lookup(results, "hydra_path", "trust_rules")
    if costs is None or rules is None:
        return {"error": "site day not priced: a component cost, the fair path or the trust rules is missing"}
    rules = site_day.TrustRules(**rules)
    day = site_day.simulate(costs, rules)
    keys = (
        "offload_ratio_site_day",
        "offload_ratio_watched",
        "unwatched_share",
        "hydra_cpu_ms_per_sample",
        "server_computed_frames_per_sample",
    )
    sensitivity = {}
    for views in SITE_DAY_VIEWS_PER_UPLOAD:
        other = site_day.simulate(costs, rules, views_per_upload=views)
        sensitivity[str(views)] = {key: other[key] for key in keys}
    # What the trust rules cost on this day: each priced with the rule switched off in the model alone.
    # The uploader's deadline off is every upload at the base (no step per clean upload): the day before that policy.
    # The borderline rules despite a quorum are the window guard and nudity margin before branch windows merged.
    base_deadline = replace(rules, coverage_seconds_per_clean_upload=0.0)
    without = {
        "no_small_audience_rule": site_day.simulate(costs, replace(rules, min_audience=0)),
        "no_uploader_deadline": site_day.simulate(costs, base_deadline),
        "no_uploader_deadline_no_small_audience_rule": site_day.simulate(costs, replace(base_deadline, min_audience=0)),
        "borderline_rules_despite_quorum": site_day.simulate(costs, rules, borderline_rules_despite_quorum=True),
        "borderline_rules_despite_quorum_no_small_audience_rule": site_day.simulate(
            costs, replace(rules, min_audience=0), borderline_rules_despite_quorum=True
        ),
    }
    hydra_peaks = [value for value in (lookup(results, "hydra_path", "peak_rss_mb") or {}).values() if value]
    peaks = {
        "server_only": lookup(results, "fair", "process", "peak_rss_mb"),
        "hydra": max(hydra_peaks) if hydra_peaks else None,
    }
    return {
        "day": day,
        "views_per_upload_sensitivity": sensitivity,
        "without_rule": {name: {key: other[key] for key in keys} for name, other in without.items()},
        "money_per_frame": site_day.money_per_frame(day),
        "projection": site_day.projection(day, peaks),
        "model_size": model_size_ratios(results, day),
    }


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """The stable, flat figures (their names are a contract: scripts and the issue read them)."""
    notes = [f"{name}: {section['error']}" for name, section in results.items() if lookup(section, "error")]
    # A server that ran the whole model would convert frames the cheapest correct way: the ratio's numerator.
    server_only = lookup(results, "server_only", "cpu_ms_per_frame", "cheapest", "total")
    browser_exact = lookup(results, "server_only", "cpu_ms_per_frame", "browser_exact", "total")
    cost_runs = lookup(results, "hydra_path", "cost_runs") or []
    hydra = hydra_cpu_ms_per_frame(cost_runs)
    first_time = hydra_cpu_ms_per_frame(lookup(results, "hydra_path", "cost_runs_first_time_viewers") or [])
    shares = [run["server_share"] for run in cost_runs if run.get("settled") and run.get("server_share") is not None]
    ingest_100 = _ingest(results, 100)
    by_daphnes: dict[int, list[dict]] = {}
    for run in lookup(results, "hydra_path", "ingest_runs") or []:
        by_daphnes.setdefault(run["daphne_processes"], []).append(run)
    browser = lookup(results, "browser", "backends", "wasm")
    chosen = lookup(results, "browser", "backends", lookup(results, "browser", "chosen") or "wasm")
    litert = lookup(results, "browser", "backends", "litert")
    server_fast = lookup(results, "browser", "server_tflite")
    variants = {
        name: hydra_cpu_ms_per_frame(variant["cost_runs"])
        for name, variant in (lookup(results, "hydra_path", "variants") or {}).items()
    }
    return {
        "offload_ratio": server_only / hydra if server_only and hydra else None,
        "offload_ratio_variants": {
            name: server_only / cost if server_only and cost else None for name, cost in variants.items()
        },
        "offload_ratio_browser_exact": browser_exact / hydra if browser_exact and hydra else None,
        "server_only_cpu_ms_per_frame": server_only,
        "server_only_browser_exact_cpu_ms_per_frame": browser_exact,
        "hydra_cpu_ms_per_frame": hydra,
        "offload_ratio_first_time_viewers": server_only / first_time if server_only and first_time else None,
        "hydra_cpu_ms_per_frame_first_time_viewers": first_time,
        "server_recomputed_share": median(shares) if shares else None,
        "ingest_fps_100_clients": lookup(ingest_100, "frames_per_s"),
        "ack_p50_ms_100_clients": lookup(ingest_100, "ack_ms", "p50"),
        "ack_p99_ms_100_clients": lookup(ingest_100, "ack_ms", "p99"),
        "ingest_fps_100_clients_2_daphne": lookup(_ingest(results, 100, daphnes=2), "frames_per_s"),
        "ingest_knee_clients": {str(count): ingest_knee(runs) for count, runs in sorted(by_daphnes.items())},
        # bench.ingest (issue 15, item 3): the message path alone, 100 viewers, one daphne process.
        "ingest_frames_per_second": lookup(results, "ingest", "ingest_frames_per_second"),
        "ingest_ack_p50_ms": lookup(results, "ingest", "ingest_ack_p50_ms"),
        "ingest_ack_p99_ms": lookup(results, "ingest", "ingest_ack_p99_ms"),
        "ingest_server_cpu_ms_per_frame": lookup(results, "ingest", "ingest_server_cpu_ms_per_frame"),
        "ingest_frames_per_server_cpu_second": lookup(results, "ingest", "ingest_frames_per_server_cpu_second"),
        "ingest_paced_frames_per_second": lookup(results, "ingest_paced", "ingest_frames_per_second"),
        "ingest_paced_ack_p99_ms": lookup(results, "ingest_paced", "ingest_ack_p99_ms"),
        "browser_wasm_ms_per_frame": lookup(browser, "ms_per_frame"),
        # Issue 17: the browser runtime that ships against the server's fastest single-thread path, same run.
        "browser_ms_per_frame": lookup(chosen, "ms_per_frame"),
        "browser_cpu_ms_per_frame": lookup(chosen, "cpu_ms_per_frame"),
        "server_fast_ms_per_frame": lookup(server_fast, "ms_per_frame"),
        "server_fast_cpu_ms_per_frame": lookup(server_fast, "cpu_ms_per_frame"),
        "browser_over_server_fast": lookup(chosen, "ms_per_frame_over_server_tflite"),
        "browser_litert_ms_per_frame": lookup(litert, "ms_per_frame"),
        "browser_litert_cpu_ms_per_frame": lookup(litert, "cpu_ms_per_frame"),
        "browser_litert_over_server_fast": lookup(litert, "ms_per_frame_over_server_tflite"),
        "keras_ms_per_frame": lookup(results, "server_only", "keras_batch1", "wall_ms_per_frame"),
        "keras_batch32_ms_per_frame": lookup(results, "server_only", "keras_batch32", "wall_ms_per_frame"),
        "bytes_per_frame": lookup(results, "server_only", "wire", "bytes_per_frame"),
        "jpeg_q85_bytes_per_frame": lookup(results, "server_only", "wire", "jpeg_q85_224_bytes_median"),
        "raw_rgb_bytes_per_frame": lookup(results, "server_only", "wire", "raw_rgb_224_bytes"),
        "quantisation_argmax_agreement": lookup(
            results, "server_only", "quantisation", "photo_crops", "argmax_agreement"
        ),
        "quantisation_max_prob_difference": lookup(
            results, "server_only", "quantisation", "photo_crops", "max_prob_difference"
        ),
        "time_to_verdict_s": {
            viewers: figures.get("seconds")
            for viewers, figures in (lookup(results, "hydra_path", "time_to_verdict") or {}).items()
        },
        "server_fallback_cpu_ms_per_frame": lookup(
            results, "hydra_path", "time_to_verdict", "0", "server_cpu_ms_per_frame", "total"
        ),
        "peak_rss_mb_server_only": lookup(results, "server_only", "process", "peak_rss_mb"),
        "peak_rss_mb_hydra": lookup(results, "hydra_path", "peak_rss_mb"),
        **fair_and_site_day(results, hydra),
        **viewer_side(results),
        "notes": notes,
    }


def viewer_side(results: dict[str, Any]) -> dict[str, Any]:
    """The figures of issue 17 on the viewer's side: how soon the model is ready, what playback pays."""
    playback = lookup(results, "playback")
    return {
        "browser_model_ready_ms_warm": lookup(results, "page_ready", "warm_model_ready_ms_median"),
        "browser_model_ready_ms_cold": lookup(results, "page_ready", "cold_model_ready_ms"),
        "playback_dropped_frames_added": lookup(playback, "playback_dropped_frames_added"),
        "analysis_cpu_share": lookup(playback, "analysis_cpu_share"),
        "analysis_engine_share": lookup(playback, "engine_share_long_clip"),
        "analysis_long_tasks_over_50ms": {
            "on": lookup(playback, "long_tasks_over_50ms_on"),
            "off": lookup(playback, "long_tasks_over_50ms_off"),
        },
        "seeker_bytes_per_visit": lookup(playback, "seeker_bytes_per_visit"),
        "seeker_bytes_per_frame": lookup(playback, "seeker_bytes_per_frame"),
    }


def fair_and_site_day(results: dict[str, Any], hydra: float | None) -> dict[str, Any]:
    """The figures of issue 14: the fair comparator, the component costs, the site day, money and scale."""
    fair = lookup(results, "fair", "cheapest_cpu_ms_per_frame")
    rows = lookup(results, "hydra_path", "components", "rows") or {}
    recompute = lookup(results, "recompute", "paths") or {}
    day = lookup(results, "site_day", "day")
    paths = lookup(results, "fair", "paths") or {}
    return {
        "offload_ratio_fair": fair / hydra if fair and hydra else None,
        "offload_ratio_fair_by_path": {
            name: path["total"] / hydra if hydra else None for name, path in sorted(paths.items())
        },
        "server_only_fair_cpu_ms_per_frame": fair,
        "server_only_fair_path": lookup(results, "fair", "cheapest"),
        "fair_path_min_cosine_vs_keras": lookup(results, "fair", "agreement", "exact", "vs_keras_path_min_cosine"),
        "extra_view_server_cpu_ms": lookup(rows, "extra_viewer_visit", "total"),
        "new_device_visit_server_cpu_ms": lookup(rows, "new_device_visit", "total"),
        "returning_device_visit_server_cpu_ms": lookup(rows, "returning_device_visit", "total"),
        "spot_check_server_cpu_ms": lookup(rows, "spot_check", "total"),
        "recompute_lone_frame_cpu_ms": lookup(recompute, "tflite_sparse", "lone_spot_check_cpu_ms"),
        "recompute_lone_frame_cpu_ms_keras": lookup(recompute, "keras_full_frame", "lone_spot_check_cpu_ms"),
        "recompute_cpu_ms_per_frame_by_pass_size": lookup(recompute, "tflite_sparse", "cpu_ms_per_frame_by_pass_size"),
        "recompute_cpu_ms_per_frame_by_pass_size_keras": lookup(
            recompute, "keras_full_frame", "cpu_ms_per_frame_by_pass_size"
        ),
        "recompute_tflite_vs_keras_min_cosine": lookup(results, "recompute", "agreement", "min_cosine"),
        "connection_server_cpu_ms": lookup(rows, "connection_with_handshake", "total"),
        "message_server_cpu_ms": lookup(rows, "message", "daphne"),
        "settlement_server_cpu_ms_per_feature": lookup(rows, "settlement_per_feature", "worker_postgres_redis"),
        "fallback_frame_server_cpu_ms": lookup(rows, "fallback_frame", "total"),
        "range_request_server_cpu_ms": lookup(rows, "range_request", "total"),
        "range_request_django_server_cpu_ms": lookup(rows, "range_request_django", "total"),
        "components_measured_over_summed": lookup(
            results, "hydra_path", "components", "composition", "measured_over_predicted"
        ),
        "offload_ratio_site_day": lookup(day, "offload_ratio_site_day"),
        "offload_ratio_watched": lookup(day, "offload_ratio_watched"),
        "unwatched_share": lookup(day, "unwatched_share"),
        "site_day_cpu_ms_by_reason": lookup(day, "hydra_cpu_ms_by_reason"),
        "site_day_by_views_per_upload": lookup(results, "site_day", "views_per_upload_sensitivity"),
        "usd_per_frame_server_only": lookup(results, "site_day", "money_per_frame", "server_only_usd"),
        "usd_per_frame_hydra": lookup(results, "site_day", "money_per_frame", "hydra_usd"),
        "projection_cores_server_only": lookup(results, "site_day", "projection", "server_only_cores"),
        "projection_cores_hydra": lookup(results, "site_day", "projection", "hydra_cores"),
        "offload_ratio_by_model": lookup(results, "site_day", "model_size"),
        "site_day_server_frames_per_sample": lookup(day, "server_computed_frames_per_sample"),
        "site_day_server_frames_by_reason": lookup(day, "server_frames_by_reason"),
        **replay_figures(results),
    }


def replay_figures(results: dict[str, Any]) -> dict[str, Any]:
    """The scaled day on the real stack against the model's prediction for it (null where it did not run)."""
    compared = lookup(results, "site_day_replay", "compared")
    return {
        "site_day_replay_measured_over_model": lookup(compared, "measured_over_model"),
        "site_day_replay_offload_ratio": lookup(compared, "replay_offload_ratio_driven"),
        "site_day_replay_model_offload_ratio": lookup(compared, "model_offload_ratio_driven"),
        "site_day_replay_server_frames_per_sample": lookup(compared, "server_frames_per_sample_measured"),
        "site_day_replay_model_server_frames_per_sample": lookup(compared, "server_frames_per_sample_model"),
        "site_day_replay_server_frames_by_reason": lookup(compared, "measured_server_frames_by_reason"),
        "site_day_replay_model_server_frames_by_reason": lookup(compared, "model_server_frames_by_reason"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="the headline figures (about 20 minutes on 2 shared cores)")
    mode.add_argument("--full", action="store_true", help="every figure; writes plots and results into docs/")
    parser.add_argument(
        "--model-size", action="store_true", help="with --quick: also the model-size section (InceptionV3)"
    )
    parser.add_argument("--docs", action="store_true", help="with --quick: write plots and results into docs/ too")
    args = parser.parse_args()
    for name in ("DATABASE_URL", "REDIS_URL"):
        if not os.environ.get(name, "").startswith(("postgres", "redis")):
            raise SystemExit(f"{name} must point at PostgreSQL / Redis (the Hydra path runs real servers)")
    profile = FULL if args.full else replace(QUICK, model_size=args.model_size)
    results = measure(profile)
    print(report.table(results))
    if args.full or args.docs:
        for path in report.write_docs(results):
            print(f"wrote {path}")
    print(json.dumps(results["summary"], separators=(",", ":")))


if __name__ == "__main__":
    main()

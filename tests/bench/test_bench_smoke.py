"""The benchmark code on tiny inputs, so that it cannot rot: shapes and keys, never timings."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from bench import load, measure, plots, report, run, wire
from bench.ml_quantisation import quantisation_error
from inference.ml.nsfw_head import NsfwHead


def test_percentile_interpolates_and_median_of_odd_count() -> None:
    assert measure.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert measure.percentile([0.0, 10.0], 99) == pytest.approx(9.9)
    assert measure.percentile([], 50) != measure.percentile([], 50)  # NaN for no values
    assert measure.median([5.0, 1.0, 3.0]) == 3.0


def test_own_process_reads_from_proc() -> None:
    busy = sum(i * i for i in range(200_000))
    assert busy > 0
    assert measure.process_cpu_s(os.getpid()) > 0
    assert measure.tree_cpu_s(os.getpid()) >= measure.process_cpu_s(os.getpid())
    assert os.getpid() in measure.process_tree(os.getpid())
    assert measure.tree_peak_rss_mb(os.getpid()) > 1


def test_run_isolated_returns_result_and_process_figures() -> None:
    result = measure.run_isolated("bench.machine:describe", timeout=60, database_url=None)
    assert result["cores"] >= 1
    assert set(result["process"]) == {"cpu_s", "peak_rss_mb"}
    with pytest.raises(measure.BenchError) as failure:
        measure.run_isolated("bench.machine:no_such_function", timeout=60)
    first_line = str(failure.value).splitlines()[0]
    assert "failed (exit 1)" in first_line and "AttributeError" in first_line and "no_such_function" in first_line


def test_a_failed_section_says_why_in_its_note() -> None:
    section = run._section("missing", "bench.machine:no_such_function", timeout=60)
    assert "AttributeError" in section["error"] and "no_such_function" in section["error"]
    assert "Traceback" in section["error_detail"]


def test_load_generator_runs_as_its_own_process(tmp_path: Path) -> None:
    """bench.load imports the trust harness, which reads Django settings and models: a fresh process sets them up."""
    codes = tmp_path / "codes.npy"
    np.save(codes, np.zeros((1, 1280), dtype=np.uint8))
    config = load.LoadConfig(
        urls=["ws://127.0.0.1:1/"], slugs=["nothing"], times=[0], codes_path=str(codes), clients=1, deadline_s=5.0
    )
    completed = subprocess.run(
        [sys.executable, "-m", "bench.load", json.dumps(asdict(config))],
        cwd=measure.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["clients"] == 1 and result["connected_clients"] == 0 and result["frames_accepted"] == 0


def test_websocket_frame_overhead_follows_rfc6455() -> None:
    assert wire.websocket_frame_overhead(125, masked=False) == 2
    assert wire.websocket_frame_overhead(126, masked=True) == 8
    assert wire.websocket_frame_overhead(70_000, masked=True) == 14


def test_wire_sizes_of_the_real_batch_format_against_jpeg_and_raw() -> None:
    rng = np.random.default_rng(1)
    noisy = rng.integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    flat = np.full((2, 48, 64, 3), 128, dtype=np.uint8)
    sizes = wire.measure({"noisy": noisy, "flat": flat}, feature_size=1280)
    batch = wire.CLIENT_BATCH
    payload = 12 + batch * (8 + 1280)  # docs/protocol.md
    assert sizes["features"]["payload_bytes_per_frame"] == payload / batch
    # RFC 6455, client to server: 2 bytes, the 16- or 64-bit length, the 4-byte mask
    header = 2 + (2 if payload < 65536 else 8) + 4
    assert sizes["bytes_per_frame"] == (payload + header) / batch
    assert sizes["raw_rgb_224_bytes"] == 224 * 224 * 3
    assert sizes["jpeg_q85_224_bytes"]["noisy"] > sizes["jpeg_q85_224_bytes"]["flat"] > 0
    assert sizes["features"]["ack_bytes_per_frame"] > 0


def test_quantisation_error_of_a_small_head() -> None:
    rng = np.random.default_rng(2)
    sizes = [16, 8, 5]
    head = NsfwHead(
        layers=tuple(
            (rng.normal(0, 0.3, (a, b)).astype(np.float32), np.zeros(b, np.float32))
            for a, b in zip([1280, *sizes[:-1]], sizes, strict=True)
        )
    )
    features = rng.uniform(0, 6, (12, 1280)).astype(np.float32)
    error = quantisation_error(features, head)
    assert error["frames"] == 12
    assert 0 < error["max_abs_error"] <= 6 / 255 / 2 + 1e-6
    assert 0.0 <= error["argmax_agreement"] <= 1.0
    assert 0.0 <= error["max_prob_difference"] < 1.0
    assert error["min_cosine"] > 0.999


class FakeTransport:
    """Answers every message at once, like a server with no work to do."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send_text(self, text: str) -> None:
        pass

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    async def receive(self, timeout: float):
        return {"type": "ack"}

    async def close(self) -> None:
        pass


def test_timed_transport_times_each_batch_and_paces_like_a_browser() -> None:
    timings = load.Timings()
    inner = FakeTransport()
    transport = load.TimedTransport(inner, timings, pace_ms_per_frame=5.0)
    batch_of_two = b"HF\x01\x01" + (0).to_bytes(4, "little") + (2).to_bytes(2, "little") + bytes(2)

    async def conversation() -> float:
        await transport.send_text("hello")
        for _ in range(3):
            await transport.send_bytes(batch_of_two)
            await transport.receive(1.0)
        return timings.last_answer - transport.computing_since

    elapsed = asyncio.run(conversation())
    assert len(timings.latencies_s) == 3 and len(inner.sent) == 3
    assert transport.frames_computed == 6
    assert elapsed >= 6 * 0.005  # six frames at 5 ms each had to be "computed" before the last answer


def test_a_leaving_viewer_sends_its_batches_then_hears_nothing() -> None:
    inner = FakeTransport()
    transport = load.LeavingTransport(inner, messages=1)

    async def conversation() -> list:
        answers = []
        for _ in range(2):
            await transport.send_bytes(b"batch")
            answers.append(await transport.receive(1.0))
        return answers

    first, second = asyncio.run(conversation())
    assert len(inner.sent) == 1 and first is not None and second is None


def test_every_viewer_has_its_own_network() -> None:
    addresses = [load.viewer_address(12, index) for index in range(600)]
    assert len({address.rsplit(".", 1)[0] for address in addresses}) == 600


def test_knee_is_where_throughput_stops_growing() -> None:
    runs = [{"clients": c, "frames_per_s": f} for c, f in ((10, 100.0), (50, 300.0), (100, 310.0), (500, 200.0))]
    assert run.ingest_knee(runs) == 50
    assert run.ingest_knee(runs[:2]) is None


def results_fixture() -> dict:
    """The shape of a run's results, with a failed section, as bench.run builds it."""
    ingest = [
        {
            "clients": clients,
            "daphne_processes": daphnes,
            "frames_per_s": 100.0 * daphnes,
            "frames_accepted": 10 * clients,
            "timed_out_clients": 0,
            "errors": {},
            "ack_ms": {"p50": 10.0 * clients, "p90": 20.0 * clients, "p99": 30.0 * clients, "max": 40.0 * clients},
        }
        for daphnes in (1, 2)
        for clients in (10, 100)
    ]
    cost = {"daphne": 1.0, "worker": 2.0, "postgres": 0.5, "total": 3.5}
    return {
        "machine": {
            "cpu": "test cpu",
            "cores": 2,
            "memory_gib": 1.0,
            "python": "3.11",
            "packages": {"django": "5.2"},
            "chromium": None,
            "postgresql": None,
            "redis": None,
            "load_average_at_start": [0.0, 0.0, 0.0],
            "load_average_at_end": [0.0, 0.0, 0.0],
        },
        "server_only": {
            "samples": 3,
            "repeats": 1,
            "rendition": {"height": 720},
            "cpu_ms_per_frame": {
                "cheapest": {"decode_convert": 2.0, "cnn": 20.0, "heads": 0.1, "total": 22.1},
                "browser_exact": {"decode_convert": 10.0, "cnn": 20.0, "heads": 0.1, "total": 30.1},
            },
            "keras_batch1": {"wall_ms_per_frame": 25.0},
            "keras_batch32": {"wall_ms_per_frame": 12.0},
            "wire": {"bytes_per_frame": 1290.5, "jpeg_q85_224_bytes_median": 8000.0, "raw_rgb_224_bytes": 150528},
            "quantisation": {"photo_crops": {"argmax_agreement": 1.0, "max_prob_difference": 0.001, "frames": 4}},
            "process": {"peak_rss_mb": 2000.0},
        },
        "browser": {"error": "no browser here"},
        "hydra_path": {
            "cost_runs": [
                {"settled": True, "clients": 10, "server_share": 0.05, "server_cpu_ms_per_analysed_frame": cost},
                {"settled": False, "clients": 10, "server_share": 0.5, "server_cpu_ms_per_analysed_frame": cost},
            ],
            "time_to_verdict": {
                "0": {"seconds": 30.0, "published_s": 855.0, "how": "server only"},
                "1": {"seconds": None, "how": "one viewer"},
            },
            "ingest_runs": ingest,
            "peak_rss_mb": {"daphne": 150.0, "celery": 160.0},
            "trust_rules": TRUST_RULES,
            "clip": {"samples": 60},
            "components": {
                "viewers": 4,
                "rows": {
                    "connection_with_handshake": {"daphne": 20.0, "postgres": 6.0, "total": 26.0},
                    "message": {"daphne": 4.0},
                    "settlement_per_feature": {"worker_postgres_redis": 1.0},
                    "spot_check": {"total": 100.0},
                    "fallback_frame": {"total": 60.0},
                    "range_request": {"total": 15.0, "bytes": 80_000.0},
                    "extra_viewer_on_covered_video": {"total": 42.0, "samples_sent_per_viewer": 4.0},
                    "page_decision": {"total": 0.08},
                    "extra_viewer_visit": {"total": 0.5, "audit_rate": 0.01},
                    "new_device_visit": {"total": 900.0},
                    "returning_device_visit": {"total": 200.0},
                    "analysis_per_video": {"worker": 120.0},
                },
            },
        },
        "fair": {
            "cheapest": "tflite_transcoder_exact_one_thread",
            "cheapest_cpu_ms_per_frame": 9.0,
            "correct_min_cosine": 0.999,
            "paths": {
                "tflite_transcoder_exact_one_thread": {
                    "convert": 2.0,
                    "cnn": 6.9,
                    "heads": 0.1,
                    "total": 9.0,
                    "threads": 1,
                    "correct": True,
                },
                "tflite_keyframe_scaled_one_thread": {
                    "decode_convert": 1.0,
                    "cnn": 6.9,
                    "heads": 0.1,
                    "total": 8.0,
                    "threads": 1,
                    "correct": False,
                },
            },
            "agreement": {
                "exact": {
                    "tflite_vs_keras_same_input_min_cosine": 0.9999998,
                    "vs_keras_path_min_cosine": 0.9999997,
                    "vs_keras_path_median_cosine": 1.0,
                    "nsfw_class_agreement": 1.0,
                }
            },
            "process": {"peak_rss_mb": 1400.0},
        },
        "model_size": {
            "mobilenet_v2": {"cheapest_cnn_cpu_ms_per_frame": 6.9, "parameters": 2_257_984},
            "inception_v3": {"cheapest_cnn_cpu_ms_per_frame": 90.0, "parameters": 21_802_784},
        },
    }


TRUST_RULES = {
    "replicas": 2,
    "min_assignment": 4,
    "audit_rate": 0.01,
    "probation_results": 10,
    "spot_check_floor": 0.02,
    "coverage_deadline_s": 900,
    "sample_interval_ms": 1000,
    "max_duration_s": 14400,
    "rate_per_second": 4.0,
    "burst": 16,
    "client_batch": 16,
}


def summarised() -> dict:
    results = results_fixture()
    results["site_day"] = run.site_day_section(results)
    results["summary"] = run.summarise(results)
    return results


def test_summary_has_the_headline_keys_and_nulls_what_failed() -> None:
    results = results_fixture()
    results["site_day"] = run.site_day_section(results)
    summary = run.summarise(results)
    assert set(run.HEADLINE_KEYS) <= set(summary)
    assert summary["offload_ratio"] == pytest.approx(22.1 / 3.5)  # the cheapest server-only path
    assert summary["offload_ratio_browser_exact"] == pytest.approx(30.1 / 3.5)
    assert summary["server_only_cpu_ms_per_frame"] == 22.1
    assert summary["server_only_browser_exact_cpu_ms_per_frame"] == 30.1
    assert summary["server_recomputed_share"] == 0.05  # the run that did not settle is left out
    assert summary["ingest_fps_100_clients"] == 100.0
    assert summary["ack_p99_ms_100_clients"] == 3000.0
    assert summary["ingest_fps_100_clients_2_daphne"] == 200.0
    assert summary["ingest_knee_clients"] == {"1": 10, "2": 10}  # flat throughput: saturated from the start
    assert summary["browser_wasm_ms_per_frame"] is None
    assert any("no browser here" in note for note in summary["notes"])
    assert summary["offload_ratio_fair"] == pytest.approx(9.0 / 3.5)  # the cheapest *correct* path, not 8.0
    assert summary["server_only_fair_cpu_ms_per_frame"] == 9.0
    assert summary["extra_view_server_cpu_ms"] == 0.5
    assert summary["new_device_visit_server_cpu_ms"] == 900.0
    assert summary["spot_check_server_cpu_ms"] == 100.0
    assert 0.0 <= summary["unwatched_share"] <= 1.0
    assert summary["offload_ratio_site_day"] > 0 and summary["offload_ratio_watched"] > 0
    inception = summary["offload_ratio_by_model"]["inception_v3"]
    mobilenet = summary["offload_ratio_by_model"]["mobilenet_v2"]
    assert inception["offload_ratio_ideal_audience"] > mobilenet["offload_ratio_ideal_audience"]
    assert mobilenet["offload_ratio_ideal_audience"] == pytest.approx(summary["offload_ratio_fair"])
    json.loads(json.dumps(summary))  # the last line of bench-quick must be one JSON object


def test_table_plots_and_docs_section(tmp_path: Path) -> None:
    results = summarised()
    text = report.table(results)
    assert "offload ratio" in text and "null" in text  # the browser figure failed and says so
    figures = {figure: (value, how) for figure, value, how in report.rows(results)}
    assert figures["(1a) server-only, cheapest (swscale rgb24) CPU ms/frame"][0].startswith("22.10 (decode+RGB 2.00")
    assert figures["(1a) server-only, browser-exact (libyuv emulation) CPU ms/frame"][0].startswith("30.10")
    ratio, how = figures["offload ratio (1a)/(1b)"]
    assert ratio == "6.3" and "cheapest" in how and "browser-exact one: 8.6" in how
    assert "published: 855 s" in text
    document = tmp_path / "benchmarks.md"
    document.write_text(f"# intro\n\n{report.RESULTS_START}\nold\n{report.RESULTS_END}\n\nafter\n")
    written = report.write_docs(results, tmp_path)
    images = [path for path in written if path.suffix == ".png"]
    assert {path.name for path in images} == {
        "bench-throughput.png",
        "bench-latency.png",
        "bench-cost-per-frame.png",
        "bench-fair-paths.png",
        "bench-site-day.png",
        "bench-projection.png",
        "bench-model-size.png",
    }
    assert "offload ratio, fair (headline)" in figures and figures["offload ratio, fair (headline)"][0] == "2.6"
    assert figures["component: one spot check"][0] == "100.0"
    assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in images)
    updated = document.read_text()
    assert "\nold\n" not in updated and updated.startswith("# intro") and updated.rstrip().endswith("after")
    assert "![bench-throughput](bench-throughput.png)" in updated
    assert plots.browser(results, tmp_path / "none.png") is None
    for ingest in results["hydra_path"]["ingest_runs"]:  # every viewer cut by the deadline: nothing to plot, no crash
        ingest.update(frames_per_s=0.0, ack_ms={q: float("nan") for q in ("p50", "p90", "p99", "max")})
    assert plots.throughput(results, tmp_path / "t.png") is None and plots.latency(results, tmp_path / "l.png") is None


def test_docs_section_is_required(tmp_path: Path) -> None:
    results = summarised()
    (tmp_path / "benchmarks.md").write_text("# no markers\n")
    with pytest.raises(ValueError, match="bench:results"):
        report.write_docs(results, tmp_path)


def test_rendition_of_a_tiny_clip_is_made_once(tmp_path: Path) -> None:
    from bench import clips

    first = clips.rendition(seconds=2, width=64, height=48, fps=4, cache_dir=tmp_path)
    assert first.exists() and not list(tmp_path.glob("*.source.mp4"))
    modified = first.stat().st_mtime_ns
    assert clips.rendition(seconds=2, width=64, height=48, fps=4, cache_dir=tmp_path) == first
    assert first.stat().st_mtime_ns == modified


def test_site_day_is_reproducible_and_counts_every_reason() -> None:
    from bench import site_day

    costs = site_day.UnitCosts(
        connection=26.0,
        message=4.0,
        settlement_per_feature=1.0,
        spot_check=100.0,
        fallback_frame=60.0,
        range_request=15.0,
        extra_viewer=42.0,
        server_only_frame=9.0,
        range_bytes=80_000.0,
    )
    rules = site_day.TrustRules(**TRUST_RULES)
    day = site_day.simulate(costs, rules, uploads=60)
    assert day == site_day.simulate(costs, rules, uploads=60)  # same seed, same day
    assert set(day["hydra_cpu_ms_by_reason"]) == set(site_day.REASONS)
    assert day["hydra_cpu_ms"] == pytest.approx(sum(day["hydra_cpu_ms_by_reason"].values()))
    assert day["server_only_cpu_ms"] == day["samples"] * 9.0
    nobody = site_day.simulate(costs, rules, uploads=60, views_per_upload=0.0)
    assert nobody["unwatched_share"] == 1.0 and nobody["offload_ratio_watched"] is None
    assert nobody["hydra_cpu_ms"] == pytest.approx(  # every sample falls back, flagged stretches are confirmed
        nobody["hydra_cpu_ms_by_reason"]["fallback_unwatched"] + nobody["hydra_cpu_ms_by_reason"]["flag_confirmation"]
    )
    crowded = site_day.simulate(costs, rules, uploads=60, views_per_upload=400.0)
    assert crowded["unwatched_share"] < day["unwatched_share"]
    money = site_day.money_per_frame(day)
    assert money["capture_paths"]["played_frame"]["extra_bytes"] == 0
    assert money["hydra_usd"] == pytest.approx(money["hydra_cpu_usd"] + money["hydra_egress_usd"])
    scale = site_day.projection(day, {"server_only": 1000.0, "hydra": None})
    assert scale["samples_per_s"] == 30_000 and scale["hydra_memory_gib"] is None


def test_private_postgres_counts_backends_that_have_exited() -> None:
    import psycopg

    from bench.private_servers import start_postgres, start_redis

    postgres, redis_server = start_postgres(), start_redis()
    try:
        before = postgres.cpu_s()
        for _ in range(30):  # each connection is a backend that exits at once
            with psycopg.connect(postgres.url) as connection:
                connection.execute("SELECT count(*) FROM pg_class, pg_attribute").fetchone()
        assert postgres.cpu_s() > before
        assert redis_server.cpu_s() >= 0.0 and redis_server.url.startswith("redis://127.0.0.1:")
    finally:
        redis_server.stop()
        postgres.stop()
    assert not postgres.directory.exists()


def test_reference_resize_without_tensorflow_matches_the_cnn_preprocessing() -> None:
    import av

    from bench.fair_server import align_corners_rgb
    from inference.ml import cnn

    rgb = np.random.default_rng(3).integers(0, 256, (72, 128, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    ours = align_corners_rgb(cnn.INPUT_SIZE)(frame) / 255.0
    reference = np.asarray(cnn.preprocess(rgb[None]))[0]
    assert ours.shape == reference.shape
    assert np.max(np.abs(ours - reference)) < 1e-5


def test_summary_reads_the_shipped_browser_runtime_against_the_servers_tflite() -> None:
    results = results_fixture()
    results["browser"] = {
        "chosen": "wasm",
        "server_tflite": {"threads": 1, "ms_per_frame": 6.0, "cpu_ms_per_frame": 5.5},
        "backends": {
            "wasm": {"ms_per_frame": 54.0, "cpu_ms_per_frame": 50.0, "ms_per_frame_over_server_tflite": 9.0},
            "litert": {"ms_per_frame": 24.0, "cpu_ms_per_frame": 22.0, "ms_per_frame_over_server_tflite": 4.0},
        },
    }
    summary = run.summarise(results)
    assert (summary["browser_ms_per_frame"], summary["browser_cpu_ms_per_frame"]) == (54.0, 50.0)
    assert (summary["server_fast_ms_per_frame"], summary["server_fast_cpu_ms_per_frame"]) == (6.0, 5.5)
    assert summary["browser_over_server_fast"] == 9.0
    assert (summary["browser_litert_ms_per_frame"], summary["browser_litert_over_server_fast"]) == (24.0, 4.0)
    figures = {figure: how for figure, _, how in report.rows({**results, "summary": summary})}
    assert "9.0x the server's TFLite" in figures["(3) browser wasm ms/frame"]


SITE_DAY_COSTS = {
    "connection": 26.0,
    "message": 4.0,
    "settlement_per_feature": 1.0,
    "spot_check": 100.0,
    "fallback_frame": 60.0,
    "range_request": 15.0,
    "extra_viewer": 0.5,
    "server_only_frame": 9.0,
    "range_bytes": 80_000.0,
    "analysis": 120.0,
}


def crowded_day(**overrides) -> dict:
    """A day where most samples are watched in time by returning, honest devices: the trust rules decide."""
    from bench import site_day

    rules = site_day.TrustRules(**TRUST_RULES)
    rules = replace(rules, **overrides.pop("rules", {}))
    base = {"uploads": 40, "views_per_upload": 4000.0, "new_device_share": 0.0, "malicious_share": 0.0}
    return site_day.simulate(site_day.UnitCosts(**SITE_DAY_COSTS), rules, **(base | overrides))


def test_site_day_charges_the_small_audience_rule_and_the_window_guard() -> None:
    today = crowded_day()
    # A sample's quorum forms among the first viewers, always fewer than 5 arriving apart: the server computes it.
    assert today["server_frames_by_reason"]["small_audience"] > 0
    assert today["server_computed_frames_per_sample"] == pytest.approx(1.0, abs=0.05)
    # Every pass that accepts features and every recomputation pass re-runs the analysis.
    assert today["analyses"] > today["visits"]["analysing"]
    assert today["hydra_cpu_ms_by_reason"]["analysis"] == pytest.approx(today["analyses"] * 120.0)
    # Before branch windows, the window guard computed every borderline window's samples whatever their replicas.
    guarded = crowded_day(rules={"min_audience": 0}, borderline_rules_despite_quorum=True)["server_frames_by_reason"]
    assert guarded["small_audience"] == 0
    assert guarded["window_guard"] > 10 * guarded["spot_checks_returning"] > 0  # every unchecked sample
    neither = crowded_day(rules={"min_audience": 0})
    assert neither["server_frames_by_reason"]["window_guard"] == 0
    assert neither["server_computed_frames_per_sample"] < 0.5 * today["server_computed_frames_per_sample"]
    assert neither["offload_ratio_site_day"] > today["offload_ratio_site_day"]


def test_site_day_counts_viewers_who_arrive_together_once() -> None:
    from bench import site_day

    rules = site_day.TrustRules(**TRUST_RULES)
    assert site_day.small_audience([0.0, 61.0, 122.0, 183.0, 244.0], rules) is False
    assert site_day.small_audience([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0], rules) is True  # one burst counts once


def test_site_day_new_devices_count_beside_established_ones_with_a_bounded_probation() -> None:
    from bench import site_day

    spared = crowded_day(violence_head_active=False, rules={"min_audience": 0})
    assert spared["server_frames_by_reason"]["probation"] == 0
    # Half the viewers new: their samples are accepted beside the returning ones, each new device checked at most
    # once per pass (1 - 0.75^k for k of its samples accepted) and 5 times in all, never on every sample.
    mixed = crowded_day(violence_head_active=False, rules={"min_audience": 0}, new_device_share=0.5)
    probation = mixed["server_frames_by_reason"]["probation"]
    assert 0 < probation <= 5 * mixed["visits"]["new_device"]
    assert mixed["server_computed_frames_per_sample"] < 0.2
    # Only new devices: their agreement never counts, every sample waits for the deadline.
    alone = crowded_day(violence_head_active=False, rules={"min_audience": 0}, new_device_share=1.0)
    assert alone["server_frames_by_reason"]["probation"] == 0 and alone["analyses"] == alone["uploads"]
    fallback = alone["server_frames_by_reason"]["fallback_partly_covered"]
    assert fallback == alone["samples"]
    # The lifetime budget binds when it is below one check a pass.
    none_left = crowded_day(
        violence_head_active=False, rules={"min_audience": 0, "probation_checks": 0}, new_device_share=0.5
    )
    assert none_left["server_frames_by_reason"]["probation"] == 0
    assert site_day.TrustRules(**TRUST_RULES).probation_checks == 5  # older results carry the site's default


def test_site_day_coverage_deadline_follows_the_uploader_record() -> None:
    from bench import site_day

    rules = site_day.TrustRules(**TRUST_RULES)
    assert site_day.coverage_deadline_for(0, rules) == 900
    assert site_day.coverage_deadline_for(3, rules) == 3600
    assert site_day.coverage_deadline_for(100, rules) == 6 * 3600
    day = crowded_day(views_per_upload=8.0)
    deadlines = day["coverage_deadlines"]
    assert 0 < deadlines["uploads_at_base"] < day["uploads"] and deadlines["mean_s"] > 900
    base = crowded_day(views_per_upload=8.0, rules={"coverage_seconds_per_clean_upload": 0.0})
    assert base["coverage_deadlines"]["mean_s"] == 900 and base["coverage_deadlines"]["uploads_at_base"] == 40
    assert day["unwatched_share"] < base["unwatched_share"]
    # A record grows at most uploader_record_per_day a day: a week behind at 3 a day is 21, not 7 x today's uploads.
    draws = site_day.draw_day(
        site_day.SiteDayParams(uploads=200, established_uploader_share=1.0, uploads_per_uploader=6.0), rules
    )
    assert max(upload.uploader_record for upload in draws) <= 7 * 3 + 3
    flagged = [upload for upload in draws if upload.flagged]
    assert flagged and all(upload.uploader_record == 0 and upload.deadline_s == 900 for upload in flagged)


def test_site_day_pulls_the_deadline_back_at_the_audience_mark() -> None:
    long_deadlines = {"coverage_deadline_s": 6 * 3600, "coverage_seconds_per_clean_upload": 0.0}
    # Every upload at a 6 h base: the 10th view of an uncovered video cannot pull it back below its base.
    assert (
        crowded_day(views_per_upload=60.0, rules=long_deadlines)["coverage_deadlines"]["pulled_back_by_audience"] == 0
    )
    day = crowded_day(
        views_per_upload=60.0, new_device_share=1.0, established_uploader_share=1.0, rules={"min_audience": 0}
    )
    # New devices alone never cover a video (no small-audience rule to accept their agreement): an upload with 10
    # views before its countdown is pulled back.
    assert day["coverage_deadlines"]["pulled_back_by_audience"] > 0


def test_site_day_borderline_rules_lift_where_a_quorum_holds_the_sample() -> None:
    before = crowded_day(rules={"min_audience": 0}, nudity_borderline_share=0.1, borderline_rules_despite_quorum=True)
    assert (
        before["server_frames_by_reason"]["window_guard"] > 0
        and before["server_frames_by_reason"]["nudity_borderline"] > 0
    )
    # The merged code: every sample peers accept in the model holds a quorum, so neither borderline rule charges it.
    today = crowded_day(rules={"min_audience": 0}, nudity_borderline_share=0.1)
    assert (
        today["server_frames_by_reason"]["window_guard"] == 0 == today["server_frames_by_reason"]["nudity_borderline"]
    )
    assert today["server_computed_frames_per_sample"] < 0.5 * before["server_computed_frames_per_sample"]

"""The benchmark's table, its plots, and the generated part of docs/benchmarks.md."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bench.measure import REPO_ROOT, median
from bench.server_only import PATHS
from bench.wire import CLIENT_BATCH

DOCS = REPO_ROOT / "docs"
RESULTS_START = "<!-- bench:results:start -->"
RESULTS_END = "<!-- bench:results:end -->"


def fmt(value: Any, digits: int = 1, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "null"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value}{unit}"


def lookup(data: Any, *path: Any) -> Any:
    """data[path[0]][path[1]]..., or None where any step is missing."""
    for key in path:
        if data is None:
            return None
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, value, how it was measured) for every figure of the run."""
    summary = results["summary"]
    server = results.get("server_only", {})
    hydra = results.get("hydra_path", {})
    table = []
    for name, label in PATHS.items():
        stages = lookup(server, "cpu_ms_per_frame", name) or {}
        table.append(
            (
                f"(1a) server-only, {label} CPU ms/frame",
                f"{fmt(stages.get('total'), 2)} (decode+RGB {fmt(stages.get('decode_convert'), 2)}, "
                f"CNN {fmt(stages.get('cnn'), 2)}, heads {fmt(stages.get('heads'), 3)})",
                f"{fmt(lookup(server, 'samples'))} samples of a {fmt(lookup(server, 'rendition', 'height'))}p "
                f"rendition, median of {fmt(lookup(server, 'repeats'))}, both paths in each repeat",
            )
        )
    cost = [run["server_cpu_ms_per_analysed_frame"] for run in hydra.get("cost_runs", []) if run.get("settled")]
    if cost:
        parts = ", ".join(f"{k} {fmt(median(r[k] for r in cost), 3)}" for k in cost[0] if k != "total")
        table.append(
            (
                "(1b) Hydra path CPU ms/frame",
                f"{fmt(summary['hydra_cpu_ms_per_frame'], 3)} ({parts})",
                f"{len(cost)} runs ({sum(1 for r in hydra['cost_runs'] if r.get('complete'))} with every sample "
                f"covered; viewers dropped: {sum(r.get('dropped_clients', 0) for r in hydra['cost_runs'])}), "
                f"{lookup(hydra, 'cost_runs', 0, 'clients')} returning viewers, "
                f"{lookup(hydra, 'cost_runs', 0, 'viewers_per_video')} per video; verification included, "
                f"server recomputed {fmt(summary['server_recomputed_share'], 3)} of the samples",
            )
        )
    else:
        table.append(("(1b) Hydra path CPU ms/frame", "null", lookup(hydra, "error") or "no settled run"))
    first_time = [run for run in hydra.get("cost_runs_first_time_viewers") or [] if run.get("settled")]
    if first_time:
        table.append(
            (
                "(1b) Hydra path, first-time viewers",
                fmt(summary["hydra_cpu_ms_per_frame_first_time_viewers"], 3),
                f"devices on probation: server recomputed {fmt(median(r['server_share'] for r in first_time), 3)} "
                f"of the samples; offload ratio {fmt(summary['offload_ratio_first_time_viewers'], 1)}",
            )
        )
    for name, variant in (hydra.get("variants") or {}).items():
        runs = [
            run["server_cpu_ms_per_analysed_frame"]["total"]
            for run in variant["cost_runs"]
            if run.get("settled") and run.get("server_cpu_ms_per_analysed_frame")
        ]
        table.append(
            (
                f"(1b) Hydra path, {name}",
                fmt(median(runs), 3) if runs else "null",
                f"settings {variant['settings']}; offload ratio "
                f"{fmt(lookup(summary, 'offload_ratio_variants', name), 1)}",
            )
        )
    idle = hydra.get("idle_cpu_s_per_s")
    if idle:
        table.append(
            (
                "idle server CPU s/s",
                ", ".join(f"{k} {fmt(v, 4)}" for k, v in idle.items()),
                "included in the (1b) figures, not subtracted",
            )
        )
    table.append(
        (
            "server-only through the site (fallback)",
            fmt(summary.get("server_fallback_cpu_ms_per_frame"), 3),
            "CPU ms/frame of daphne + worker + PostgreSQL for a video no viewer can reach (time-to-verdict run)",
        )
    )
    table.append(
        (
            "offload ratio (1a)/(1b)",
            fmt(summary["offload_ratio"], 1),
            "same run, medians; (1a) is the cheapest server-only path "
            f"(with the browser-exact one: {fmt(summary['offload_ratio_browser_exact'], 1)})",
        )
    )
    peaks = summary.get("peak_rss_mb_hydra") or {}
    table.append(
        (
            "peak RSS MB",
            f"server-only {fmt(summary['peak_rss_mb_server_only'], 0)}; "
            + "; ".join(f"{name} {fmt(value, 0)}" for name, value in peaks.items()),
            "VmHWM / ru_maxrss of each process",
        )
    )
    for run in hydra.get("ingest_runs", []):
        table.append(
            (
                f"(2) ingest, {run['daphne_processes']} daphne, {run['clients']} clients",
                f"{fmt(run['frames_per_s'], 0)} frames/s, ack p50 {fmt(run['ack_ms']['p50'], 0)} ms, "
                f"p99 {fmt(run['ack_ms']['p99'], 0)} ms",
                f"{run['frames_accepted']} frames stored, {run['timed_out_clients']} clients cut by the deadline, "
                f"{run.get('dropped_clients', 0)} dropped, errors {run['errors'] or 'none'}",
            )
        )
    browser = results.get("browser", {})
    for backend, figures in (lookup(browser, "backends") or {}).items():
        table.append(
            (
                f"(3) browser {backend} ms/frame",
                fmt(figures.get("ms_per_frame"), 1),
                f"model load {fmt(figures.get('load_ms'), 0)} ms; "
                f"{fmt(figures.get('ms_per_frame_over_keras'), 1)}x Keras batch 1",
            )
        )
    if not lookup(browser, "backends"):
        table.append(("(3) browser ms/frame", "null", lookup(browser, "error") or "not measured"))
    table.append(
        (
            "Keras CNN ms/frame (wall)",
            f"batch 1 {fmt(summary['keras_ms_per_frame'], 1)}, "
            f"batch 32 {fmt(summary['keras_batch32_ms_per_frame'], 1)}",
            "same machine, same run, resize included",
        )
    )
    table.append(
        (
            "(4) bytes/frame on the websocket",
            f"{fmt(summary['bytes_per_frame'], 0)} vs JPEG q85 {fmt(summary['jpeg_q85_bytes_per_frame'], 0)} "
            f"vs raw RGB {fmt(summary['raw_rgb_bytes_per_frame'], 0)}",
            f"224x224; batch of {CLIENT_BATCH} + websocket header; JPEG median over rendition frames and photo crops",
        )
    )
    for viewers, figures in (lookup(hydra, "time_to_verdict") or {}).items():
        value = fmt(figures.get("seconds"), 1, " s")
        if "published_s" in figures:
            value += f" (published: {fmt(figures['published_s'], 0, ' s')})"
        table.append((f"(5) time to verdict, {viewers} viewers", value, figures["how"]))
    if not lookup(hydra, "time_to_verdict"):
        table.append(("(5) time to verdict", "null", "not measured in this profile"))
    for source in ("photo_crops", "rendition_frames"):
        error = lookup(server, "quantisation", source) or {}
        table.append(
            (
                f"(6) uint8 vs float32 ({source})",
                f"argmax agreement {fmt(error.get('argmax_agreement'), 3)}, "
                f"max |dprob| {fmt(error.get('max_prob_difference'), 4)}",
                f"{fmt(error.get('frames'))} frames, min cosine {fmt(error.get('min_cosine'), 6)}",
            )
        )
    return table


def table(results: dict[str, Any]) -> str:
    lines = rows(results)
    widths = [max(len(row[i]) for row in lines) for i in range(2)]
    out = [f"{'figure':<{widths[0]}}  {'value':<{widths[1]}}  how"]
    out += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in lines]
    out += [f"note: {note}" for note in results["summary"]["notes"]]
    return "\n".join(out)


def markdown(results: dict[str, Any], images: list[Path]) -> str:
    described = results["machine"]
    lines = [
        RESULTS_START,
        "",
        f"Last full run: {described['cpu']}, {described['cores']} cores, {described['memory_gib']} GiB; "
        f"load average {described['load_average_at_start']} at the start and {described.get('load_average_at_end')} "
        f"at the end (the machine is shared). Versions: Python {described['python']}, "
        + ", ".join(f"{name} {version}" for name, version in described["packages"].items())
        + f", {described['chromium']}, PostgreSQL {described['postgresql']}, {described['redis']}.",
        "",
        "| figure | value | how |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c.replace('|', '/')} |" for a, b, c in rows(results)]
    lines += [""] + [f"- note: {note}" for note in results["summary"]["notes"]]
    lines += ["", "```json", json.dumps(results["summary"], indent=1), "```", ""]
    lines += [f"![{path.stem}]({path.name})" for path in images]
    lines += ["", RESULTS_END]
    return "\n".join(lines)


def write_docs(results: dict[str, Any], docs: Path = DOCS) -> list[Path]:
    """Write bench-results.json, the PNG plots, and the results section of benchmarks.md into ``docs``."""
    from bench import plots

    written = [docs / "bench-results.json"]
    written[0].write_text(json.dumps(results, indent=1, default=str) + "\n")
    images = plots.write_all(results, docs)
    written += images
    document = docs / "benchmarks.md"
    text = document.read_text()
    section = markdown(results, images)
    pattern = re.compile(re.escape(RESULTS_START) + ".*?" + re.escape(RESULTS_END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{document} has no {RESULTS_START} ... {RESULTS_END} section")
    document.write_text(pattern.sub(lambda _: section, text))
    written.append(document)
    return written

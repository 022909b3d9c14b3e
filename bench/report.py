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
    table += fair_rows(results)
    browser = results.get("browser", {})
    for backend, figures in (lookup(browser, "backends") or {}).items():
        table.append(
            (
                f"(3) browser {backend} ms/frame",
                fmt(figures.get("ms_per_frame"), 1),
                f"model load {fmt(figures.get('load_ms'), 0)} ms; "
                f"{fmt(figures.get('ms_per_frame_over_server_tflite'), 1)}x the server's TFLite on one thread "
                f"({fmt(figures.get('cpu_over_server_tflite'), 1)}x in CPU); "
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


COMPONENTS = {
    "connection_with_handshake": "connection with handshake (per viewer)",
    "message": "message (per binary batch; daphne)",
    "settlement_per_feature": "storage + settlement per feature (worker, PostgreSQL, Redis)",
    "analysis_per_video": "analysis per video (worker, all of it)",
    "spot_check": "one spot check",
    "fallback_frame": "one fallback frame (server computes it through the site)",
    "range_request": "one Range request via nginx (production; hidden seeker, one second of rendition)",
    "range_request_django": "one Range request via Django (embedded default; signed URL, no database read)",
    "extra_viewer_on_covered_video": "one analysing visit on a covered video (socket; now only audits)",
    "page_decision": "the player page's decision to analyse (covered video)",
    "extra_viewer_visit": "one extra viewer on a covered video (decision + audit rate x analysing visit)",
    "new_device_visit": "one visit, new device (probation)",
    "returning_device_visit": "one visit, returning device",
}


def _split(row: dict[str, float]) -> str:
    parts = {k: v for k, v in row.items() if k not in ("total", "bytes", "samples_sent_per_viewer")}
    text = fmt(row.get("total", next(iter(parts.values()), None)), 1)
    if "total" in row and parts:
        text += " (" + ", ".join(f"{k} {fmt(v, 1)}" for k, v in parts.items()) + ")"
    return text


def recompute_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The server's recomputation alone (``bench.recompute``): TFLite, one thread, beside the Keras path it replaced."""
    section = results.get("recompute") or {}
    if "error" in section:
        return [("recomputation (server CNN)", "null", section["error"])]
    after, before = (lookup(section, "paths", name) or {} for name in ("tflite_sparse", "keras_full_frame"))
    agreement = section.get("agreement") or {}
    passes = after.get("cpu_ms_per_frame_by_pass_size") or {}
    largest = max(passes, key=int) if passes else None
    return [
        (
            "one spot check (server recomputation: open, seek, decode, convert, CNN)",
            f"{fmt(after.get('lone_spot_check_cpu_ms'), 1)} "
            f"(Keras path before: {fmt(before.get('lone_spot_check_cpu_ms'), 1)})",
            "process CPU ms, TFLite 1 thread; the Celery task and its database work are in the component above",
        ),
        (
            f"one fallback frame (server recomputation, per frame of a pass of {largest})",
            f"{fmt(passes.get(largest), 1)} (Keras path before: "
            f"{fmt(lookup(before, 'cpu_ms_per_frame_by_pass_size', largest), 1)})",
            f"per frame by pass size {', '.join(f'{k}: {fmt(v, 1)}' for k, v in passes.items())}; min cosine to "
            f"Keras {fmt(agreement.get('min_cosine'), 6)}, identical uint8 codes on "
            f"{fmt(agreement.get('identical_uint8_codes'), 3)} of frames",
        ),
    ]


def fair_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The fair comparator, the component costs, the site day, money, projection and model size."""
    summary = results["summary"]
    fair = results.get("fair") or {}
    table = []
    for name, path in sorted((fair.get("paths") or {}).items()):
        stages = ", ".join(f"{k} {fmt(v, 2)}" for k, v in path.items() if k not in ("total", "threads", "correct"))
        table.append(
            (
                f"(1a fair) {name} CPU ms/frame",
                f"{fmt(path['total'], 2)} ({stages})",
                f"{path['threads']} TFLite thread(s); same features as Keras (min cosine >= "
                f"{fair.get('correct_min_cosine')}): {path['correct']}; ratio "
                f"{fmt(lookup(summary, 'offload_ratio_fair_by_path', name), 1)}",
            )
        )
    for conversion, agreement in (fair.get("agreement") or {}).items():
        table.append(
            (
                f"(1a fair) agreement, {conversion} input",
                f"min cosine vs Keras path {fmt(agreement['vs_keras_path_min_cosine'], 6)}, "
                f"median {fmt(agreement['vs_keras_path_median_cosine'], 6)}",
                f"TFLite vs Keras on the same input: {fmt(agreement['tflite_vs_keras_same_input_min_cosine'], 7)}; "
                f"nsfw class agreement {fmt(agreement['nsfw_class_agreement'], 3)}",
            )
        )
    if "error" in fair:
        table.append(("(1a fair) server-only", "null", fair["error"]))
    table.append(
        (
            "offload ratio, fair (headline)",
            fmt(summary.get("offload_ratio_fair"), 1),
            f"cheapest correct server-only path ({summary.get('server_only_fair_path')}, "
            f"{fmt(summary.get('server_only_fair_cpu_ms_per_frame'), 2)} ms) / Hydra path (1b), idealised audience",
        )
    )
    for key, label in COMPONENTS.items():
        row = lookup(results, "hydra_path", "components", "rows", key)
        how = "server CPU ms, all processes"
        if key in ("range_request", "range_request_django") and row:
            how += f"; {fmt(row.get('bytes'), 0)} bytes each"
        if key == "extra_viewer_on_covered_video" and row:
            how += f"; {fmt(row.get('samples_sent_per_viewer'), 1)} samples sent per viewer"
        table.append((f"component: {label}", _split(row) if row else "null", how))
    table.extend(recompute_rows(results))
    composition = lookup(results, "hydra_path", "components", "composition")
    table.append(
        (
            "components add up? (measured / summed)",
            fmt(lookup(composition, "measured_over_predicted"), 2),
            f"one window with returning visits, extra viewers and a fallback video at once: measured "
            f"{fmt(lookup(composition, 'measured_total_ms'), 0)} ms vs summed component costs "
            f"{fmt(lookup(composition, 'predicted_total_ms'), 0)} ms",
        )
    )
    day = lookup(results, "site_day", "day")
    if day:
        table.append(
            (
                "site day: offload ratio",
                f"{fmt(day['offload_ratio_site_day'], 2)} "
                f"(watched content only: {fmt(day['offload_ratio_watched'], 2)})",
                f"{day['uploads']} uploads, {day['samples']} samples, visits {day['visits']}; "
                f"unwatched before the coverage deadline: {fmt(day['unwatched_share'] * 100, 1)} % of the samples",
            )
        )
        deadlines = day.get("coverage_deadlines")  # results priced before the uploader's deadline carry none
        if deadlines:
            table.append(
                (
                    "site day: coverage deadlines",
                    f"mean {fmt(deadlines['mean_s'] / 3600, 2)} h",
                    f"uploads at the base {deadlines['uploads_at_base']}, at the cap {deadlines['uploads_at_cap']} "
                    f"of {day['uploads']}; pulled back by the audience mark {deadlines['pulled_back_by_audience']}",
                )
            )
        total = day["hydra_cpu_ms"]
        table.append(
            (
                "site day: Hydra server CPU by reason",
                ", ".join(
                    f"{k} {fmt(v / total * 100, 1)} %"
                    for k, v in sorted(day["hydra_cpu_ms_by_reason"].items(), key=lambda kv: -kv[1])
                ),
                f"{fmt(day['hydra_cpu_ms_per_sample'], 1)} ms per sample vs server-only "
                f"{fmt(day['unit_costs_ms']['server_only_frame'], 1)}",
            )
        )
        for views, figures in (lookup(results, "site_day", "views_per_upload_sensitivity") or {}).items():
            table.append(
                (
                    f"site day at {views} first-day views per upload",
                    f"ratio {fmt(figures['offload_ratio_site_day'], 2)}, "
                    f"watched {fmt(figures['offload_ratio_watched'], 2)}",
                    f"unwatched share {fmt(figures['unwatched_share'], 3)}",
                )
            )
        for name, figures in (lookup(results, "site_day", "without_rule") or {}).items():
            table.append(
                (
                    f"site day, model only: {name.replace('_', ' ')}",
                    f"ratio {fmt(figures['offload_ratio_site_day'], 2)}, "
                    f"watched {fmt(figures['offload_ratio_watched'], 2)}",
                    f"server frames per sample {fmt(figures['server_computed_frames_per_sample'], 2)} "
                    f"(today's rules: {fmt(day['server_computed_frames_per_sample'], 2)})",
                )
            )
    else:
        table.append(("site day", "null", lookup(results, "site_day", "error") or "not priced"))
    table.extend(replay_rows(results))
    money = lookup(results, "site_day", "money_per_frame")
    if money:
        seeker = money["capture_paths"]["hidden_seeker_frame"]
        table.append(
            (
                "money per analysed frame (USD)",
                f"server-only {money['server_only_usd']:.2e}; Hydra {money['hydra_usd']:.2e} "
                f"(CPU {money['hydra_cpu_usd']:.2e}, egress {money['hydra_egress_usd']:.2e})",
                f"prices {money['prices']}; a played frame costs 0 extra bytes, a hidden-seeker frame "
                f"{fmt(seeker['extra_bytes'], 0)} bytes = {seeker['extra_usd']:.2e} USD",
            )
        )
    projection = lookup(results, "site_day", "projection")
    if projection:
        table.append(
            (
                f"projection: {fmt(projection['upload_hours_per_minute'], 0)} hours uploaded per minute",
                f"server-only {fmt(projection['server_only_cores'], 0)} cores / "
                f"{fmt(projection['server_only_memory_gib'], 0)} GiB; "
                f"Hydra {fmt(projection['hydra_cores'], 0)} cores / "
                f"{fmt(projection['hydra_memory_gib'], 0)} GiB",
                f"{fmt(projection['samples_per_s'], 0)} samples/s; hidden-seeker egress "
                f"{fmt(projection['hidden_seeker_egress_gbit_per_s'], 2)} Gbit/s; {projection['assumptions']}",
            )
        )
    for name, figures in (lookup(results, "site_day", "model_size") or {}).items():
        table.append(
            (
                f"model size: {name}",
                f"CNN {fmt(figures['cnn_cpu_ms_per_frame'], 1)} ms; ratio ideal audience "
                f"{fmt(figures['offload_ratio_ideal_audience'], 1)}, "
                f"site day {fmt(figures.get('offload_ratio_site_day'), 2)}",
                f"{figures['parameters']:,} parameters; modelled from measured CNN costs (see docs)",
            )
        )
    return table


def replay_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The scaled day on the real stack (bench.site_day_replay) against the model's prediction for it."""
    replay = lookup(results, "site_day_replay")
    if replay is None:
        return []
    compared = lookup(replay, "compared")
    if not compared:
        return [("site day replay", "null", lookup(replay, "error") or "no comparison")]
    return [
        (
            "site day replay: server CPU measured / model",
            fmt(compared["measured_over_model"], 2),
            f"{replay['uploads']} uploads, {replay['samples']} samples, {replay['visits_driven']} visits driven "
            f"({replay['returning_visits_driven']} returning), time x{fmt(replay['time_compression'], 0)} "
            f"faster, {fmt(replay['wall_s'], 0)} s; measured {fmt(compared['measured_cpu_ms'], 0)} ms vs model "
            f"{fmt(compared['model_cpu_ms_driven'], 0)} ms (what was driven); quarantined: "
            f"{replay.get('liar_sessions_quarantined')}",
        ),
        (
            "site day replay: server frames by reason",
            f"measured {compared['measured_server_frames_by_reason']}",
            "model "
            + str({k: round(v, 1) for k, v in compared["model_server_frames_by_reason"].items() if v})
            + f"; per sample measured {fmt(compared['server_frames_per_sample_measured'], 2)}, "
            f"model {fmt(compared['server_frames_per_sample_model'], 2)}",
        ),
        (
            "site day replay: offload ratio (driven events)",
            f"measured {fmt(compared['replay_offload_ratio_driven'], 2)}, "
            f"model {fmt(compared['model_offload_ratio_driven'], 2)}",
            "fair server-only CPU for every sample of the scaled day / Hydra's server CPU for what was driven",
        ),
    ]


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
        f"Last run ({lookup(results, 'profile', 'name') or 'unknown'} profile): {described['cpu']}, "
        f"{described['cores']} cores, {described['memory_gib']} GiB; "
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

"""PNG plots of a full benchmark run, written into docs/ (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.measure import median
from bench.report import lookup
from bench.server_only import PATHS
from bench.wire import CLIENT_BATCH


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _by_daphnes(results: dict[str, Any]) -> dict[int, list[dict]]:
    """Ingest runs by daphne count; a run that stored nothing (every viewer cut by its deadline) has no point."""
    runs: dict[int, list[dict]] = {}
    for run in lookup(results, "hydra_path", "ingest_runs") or []:
        if run["frames_per_s"] > 0 and run["ack_ms"]["p50"] == run["ack_ms"]["p50"]:
            runs.setdefault(run["daphne_processes"], []).append(run)
    return {count: sorted(group, key=lambda r: r["clients"]) for count, group in sorted(runs.items())}


def _save(plt, figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def throughput(results: dict[str, Any], path: Path) -> Path | None:
    groups = _by_daphnes(results)
    if not groups:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4))
    for count, runs in groups.items():
        axes.plot([r["clients"] for r in runs], [r["frames_per_s"] for r in runs], marker="o", label=f"{count} daphne")
    axes.set_xscale("log")
    axes.set_xlabel("concurrent simulated viewers")
    axes.set_ylabel("feature frames stored per second")
    axes.set_title("Ingest throughput (loopback, 2 cores shared with the load generator)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return _save(plt, figure, path)


def latency(results: dict[str, Any], path: Path) -> Path | None:
    groups = _by_daphnes(results)
    if not groups:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4))
    for count, runs in groups.items():
        clients = [r["clients"] for r in runs]
        for quantile, style in (("p50", "-"), ("p99", "--")):
            axes.plot(
                clients, [r["ack_ms"][quantile] for r in runs], style, marker="o", label=f"{quantile}, {count} daphne"
            )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("concurrent simulated viewers")
    axes.set_ylabel("send -> ack, ms")
    axes.set_title(f"Feature batch latency (batch of {CLIENT_BATCH} frames)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return _save(plt, figure, path)


def cost_per_frame(results: dict[str, Any], path: Path) -> Path | None:
    paths = lookup(results, "server_only", "cpu_ms_per_frame")
    runs = [
        r
        for r in lookup(results, "hydra_path", "cost_runs") or []
        if r.get("settled") and r.get("server_cpu_ms_per_analysed_frame")
    ]
    if not paths or not runs:
        return None
    hydra = {
        name: median(run["server_cpu_ms_per_analysed_frame"][name] for run in runs)
        for name in ("daphne", "worker", "postgres")
    }
    bars = {
        "server-only\n" + label.replace(" (", "\n("): [
            ("server-only: decode + RGB", paths[name]["decode_convert"]),
            ("server-only: Keras CNN", paths[name]["cnn"]),
            ("server-only: heads", paths[name]["heads"]),
        ]
        for name, label in PATHS.items()
    }
    bars["Hydra"] = [
        ("Hydra: daphne", hydra["daphne"]),
        ("Hydra: Celery worker", hydra["worker"]),
        ("Hydra: PostgreSQL", hydra["postgres"]),
    ]
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.8))
    colours: dict[str, str] = {}  # one colour and one legend entry per stage, shared by both server-only bars
    for row, parts in enumerate(bars.values()):
        left = 0.0
        for label, value in parts:
            first = label not in colours
            colour = colours.setdefault(label, f"C{len(colours)}")
            axes.barh(row, value, left=left, color=colour, label=label if first else "_nolegend_")
            left += value
        axes.text(left, row, f"  {left:.2f} ms", va="center")
    axes.set_yticks(range(len(bars)), list(bars), fontsize=8)
    axes.set_xlabel("server CPU ms per analysed frame")
    axes.set_title("Server CPU per analysed frame by path (medians)")
    axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    axes.set_xlim(0, max(sum(v for _, v in parts) for parts in bars.values()) * 1.3)
    return _save(plt, figure, path)


def browser(results: dict[str, Any], path: Path) -> Path | None:
    backends = lookup(results, "browser", "backends")
    keras = lookup(results, "server_only", "keras_batch1", "wall_ms_per_frame")
    if not backends:
        return None
    server_fast = lookup(results, "browser", "server_tflite", "ms_per_frame")
    names = [("LiteRT.js wasm" if name == "litert" else f"TF.js {name}") for name in backends]
    names += ["server TFLite, 1 thread", "Keras batch 1"]
    values = [figures.get("ms_per_frame") or 0.0 for figures in backends.values()] + [server_fast or 0.0, keras or 0.0]
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 3.2))
    axes.barh(names, values)
    axes.set_xscale("log")
    for row, value in enumerate(values):
        axes.text(value, row, f"  {value:.0f} ms", va="center")
    axes.set_xlabel("ms per frame (log)")
    axes.set_title("CNN chunk per frame (wall, median): Chromium vs server, one run")
    return _save(plt, figure, path)


def fair_paths(results: dict[str, Any], path: Path) -> Path | None:
    """Every server-only path's CPU per frame beside Hydra's (idealised audience) and Hydra's on the site day."""
    bars = {
        f"Keras: {label}": lookup(results, "server_only", "cpu_ms_per_frame", name, "total")
        for name, label in PATHS.items()
    }
    for name, figures in sorted((lookup(results, "fair", "paths") or {}).items()):
        if name.endswith("one_thread"):
            bars[name.removesuffix("_one_thread") + ("" if figures["correct"] else " (other features)")] = figures[
                "total"
            ]
    bars["Hydra, idealised audience"] = lookup(results, "summary", "hydra_cpu_ms_per_frame")
    bars["Hydra, site day"] = lookup(results, "site_day", "day", "hydra_cpu_ms_per_sample")
    bars = {name: value for name, value in bars.items() if value is not None}
    if len(bars) < 3:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.2, 0.45 * len(bars) + 1.2))
    axes.barh(list(bars), list(bars.values()), color=["C0" if "Hydra" not in n else "C3" for n in bars])
    for row, value in enumerate(bars.values()):
        axes.text(value, row, f"  {value:.1f}", va="center", fontsize=8)
    axes.tick_params(axis="y", labelsize=7)
    axes.set_xlabel("server CPU ms per analysed frame (median)")
    axes.set_title("Server-only paths vs Hydra, same run")
    return _save(plt, figure, path)


def site_day_reasons(results: dict[str, Any], path: Path) -> Path | None:
    """Where the server's time goes on the site day (Hydra), with the server-only total for the same day."""
    day = lookup(results, "site_day", "day")
    if not day:
        return None
    reasons = sorted(day["hydra_cpu_ms_by_reason"].items(), key=lambda kv: kv[1])
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.2, 4.8))
    names = [name for name, _ in reasons] + ["SERVER-ONLY (fair), whole day"]
    values = [value / 3_600_000 for _, value in reasons] + [day["server_only_cpu_ms"] / 3_600_000]
    axes.barh(names, values, color=["C3"] * len(reasons) + ["C0"])
    hydra_hours = day["hydra_cpu_ms"] / 3_600_000
    for row, value in enumerate(values[:-1]):
        axes.text(value, row, f"  {value:.3f} h ({value / hydra_hours * 100:.1f} %)", va="center", fontsize=7)
    axes.text(values[-1], len(values) - 1, f"  {values[-1]:.3f} h", va="center", fontsize=7)
    axes.set_xlim(0, max(values) * 1.3)
    axes.set_xlabel("server CPU hours on the day")
    axes.set_title(
        f"Site day: Hydra server CPU by reason (ratio {day['offload_ratio_site_day']:.2f}, "
        f"unwatched {day['unwatched_share'] * 100:.0f} %)\nframes the server computes per sample: "
        f"{day['server_computed_frames_per_sample']:.2f}",
        fontsize=9,
    )
    return _save(plt, figure, path)


def site_day_replay(results: dict[str, Any], path: Path) -> Path | None:
    """The scaled day on the real stack: frames the server computed by reason, the model's prediction beside."""
    compared = lookup(results, "site_day_replay", "compared")
    if not compared:
        return None
    measured = compared["measured_server_frames_by_reason"]
    model = compared["model_server_frames_by_reason"]
    reasons = sorted(set(measured) | {name for name, value in model.items() if value})
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.2, 3.6))
    rows = range(len(reasons))
    axes.barh([row + 0.2 for row in rows], [measured.get(name, 0) for name in reasons], 0.4, label="real stack")
    axes.barh([row - 0.2 for row in rows], [model.get(name, 0) for name in reasons], 0.4, label="model")
    axes.set_yticks(list(rows), reasons)
    axes.set_xlabel("frames the server computed")
    axes.set_title(
        f"Scaled site day on the real stack: server CPU measured / model {compared['measured_over_model']:.2f}",
        fontsize=9,
    )
    axes.legend(fontsize=8)
    return _save(plt, figure, path)


def projection(results: dict[str, Any], path: Path) -> Path | None:
    figures = lookup(results, "site_day", "projection")
    if not figures:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 2.8))
    names = ["server-only (fair)", "Hydra (site-day mix)"]
    values = [figures["server_only_cores"], figures["hydra_cores"]]
    axes.barh(names, values, color=["C0", "C3"])
    for row, value in enumerate(values):
        axes.text(value, row, f"  {value:,.0f} cores", va="center")
    axes.set_xlim(0, max(values) * 1.35)
    axes.set_xlabel("CPU cores")
    axes.set_title(f"{figures['upload_hours_per_minute']:.0f} hours uploaded per minute, one sample per second")
    return _save(plt, figure, path)


def model_size(results: dict[str, Any], path: Path) -> Path | None:
    models = lookup(results, "site_day", "model_size")
    if not models:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 3.6))
    cost = [figures["cnn_cpu_ms_per_frame"] for figures in models.values()]
    for key, label in (("offload_ratio_ideal_audience", "idealised audience"), ("offload_ratio_site_day", "site day")):
        values = [figures.get(key) for figures in models.values()]
        if all(value is not None for value in values):
            axes.plot(cost, values, marker="o", label=label)
    for name, figures in models.items():
        axes.annotate(name, (figures["cnn_cpu_ms_per_frame"], figures["offload_ratio_ideal_audience"]), fontsize=8)
    axes.axhline(1.0, color="grey", linewidth=0.8)
    axes.set_xlabel("CNN CPU ms per frame (TFLite, cheapest thread count)")
    axes.set_ylabel("offload ratio")
    axes.set_title("Offload ratio against the model's cost")
    axes.legend(fontsize=8)
    return _save(plt, figure, path)


def viewer_side(results: dict[str, Any], path: Path) -> Path | None:
    """Issue 17: how soon the model is ready against the targets, and the browser's CPU per clip without and
    with the analysis."""
    ready = lookup(results, "page_ready")
    visits = lookup(results, "playback", "visits")
    if not ready or not visits or "error" in ready:
        return None
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1, 2.2]})
    values = [ready["cold_model_ready_ms"] / 1000, ready["warm_model_ready_ms_median"] / 1000]
    left.bar(["cold", "warm"], values, color=["#8c6bb1", "#41ae76"])
    for column, (value, target) in enumerate(zip(values, (5, 2), strict=True)):
        left.text(column, value, f"{value:.1f} s", ha="center", va="bottom")
        left.hlines(target, column - 0.4, column + 0.4, colors="black", linestyles="dashed")
    left.set_ylabel("s from navigation to model ready")
    left.set_title("Model ready (dashed: target)")
    names = [visit["clip"].replace("montage of ", "").replace(" noFight clips", " clips") for visit in visits]
    positions = range(len(visits))
    off = [visit["off"]["browser_cpu_share"] for visit in visits]
    on = [visit["on"]["browser_cpu_share"] for visit in visits]
    right.bar([x - 0.2 for x in positions], off, width=0.4, label="analysis off")
    right.bar([x + 0.2 for x in positions], on, width=0.4, label="analysis on")
    right.set_xticks(list(positions), names, rotation=15, fontsize=8)
    right.set_ylabel("Chromium CPU, cores (load to end)")
    right.set_title("Playing real clips, headless Chromium")
    right.legend()
    return _save(plt, figure, path)


def write_all(results: dict[str, Any], directory: Path) -> list[Path]:
    made = [
        fair_paths(results, directory / "bench-fair-paths.png"),
        site_day_reasons(results, directory / "bench-site-day.png"),
        site_day_replay(results, directory / "bench-site-day-replay.png"),
        projection(results, directory / "bench-projection.png"),
        model_size(results, directory / "bench-model-size.png"),
        throughput(results, directory / "bench-throughput.png"),
        latency(results, directory / "bench-latency.png"),
        cost_per_frame(results, directory / "bench-cost-per-frame.png"),
        browser(results, directory / "bench-browser.png"),
        viewer_side(results, directory / "bench-viewer.png"),
    ]
    return [path for path in made if path is not None]

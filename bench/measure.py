"""Process accounting for the benchmarks: CPU seconds (all threads), peak memory, isolated runs.

Each measurement that needs a clean peak-memory figure runs in a fresh Python process
(``run_isolated``): the child imports one function, calls it with JSON keyword arguments and
prints its result as the last line of stdout, together with its own CPU time and peak RSS.
Server processes started by a benchmark (daphne, a Celery worker) are read from ``/proc``.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

RESULT_MARK = "BENCH-RESULT "
REPO_ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A benchmark could not measure what it set out to measure."""


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def own_peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class CpuWall:
    cpu_s: float
    wall_s: float


def timed(function: Callable[[], object]) -> tuple[object, CpuWall]:
    """Run ``function``; CPU time is the whole process's (every thread: TensorFlow's, PyAV's)."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = function()
    return result, CpuWall(time.process_time() - cpu, time.perf_counter() - wall)


# --- Other processes, from /proc ---------------------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process and of its children that have exited and been waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14, stime 15, cutime 16, cstime 17 (1-based).
    return sum(int(fields[index]) for index in (11, 12, 13, 14)) / CLOCK_TICKS


def process_peak_rss_mb(pid: int) -> float:
    """VmHWM: the peak resident set size of a running process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM for process {pid}")


def process_tree(pid: int) -> list[int]:
    """The process and its live descendants (a descendant that exits while it is being listed is left out)."""
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except FileNotFoundError:
                continue
            found.extend(int(child) for child in children)
            frontier.extend(int(child) for child in children)
    return found


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process tree: the root first, so that a child reaped between the reads is missed
    (a few ms at most), never counted twice."""
    total = 0.0
    for member in process_tree(pid):
        try:
            total += process_cpu_s(member)
        except FileNotFoundError:
            continue  # exited between listing and reading; its time is in the parent's cutime once reaped
    return total


def tree_peak_rss_mb(pid: int) -> float:
    """The largest peak RSS among the process and its descendants (each is a separate server process)."""
    peaks = []
    for member in process_tree(pid):
        try:
            peaks.append(process_peak_rss_mb(member))
        except FileNotFoundError:
            continue
    return max(peaks)


# --- Isolated runs ---------------------------------------------------------------------------------------


def run_isolated(target: str, *, timeout: float, env: dict[str, str] | None = None, **kwargs) -> dict:
    """Call ``module:function(**kwargs)`` in a fresh interpreter and return its result dict.

    The result gains ``process`` = {cpu_s, peak_rss_mb} of the whole child (imports included).
    """
    command = [sys.executable, "-m", "bench.measure", target, json.dumps(kwargs)]
    completed = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if completed.returncode != 0 or not lines:
        output = completed.stderr or completed.stdout
        raise BenchError(f"{target} failed (exit {completed.returncode}): {last_words(output)}\n{output[-2000:]}")
    return json.loads(lines[-1][len(RESULT_MARK) :])


def last_words(output: str, lines: int = 3) -> str:
    """A failed process's last non-empty output lines on one line: the exception, and what it was raised from.

    The first line of a failure's message is what the report's notes show; a bare "failed (exit 1):"
    says nothing, and a traceback's last lines say why.
    """
    kept = [line.strip() for line in output.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "(no output)"


def _child_main(target: str, arguments: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hydra_site.settings")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    module_name, function_name = target.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result = function(**json.loads(arguments))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["process"] = {"cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": own_peak_rss_mb()}
    sys.stdout.flush()
    print(RESULT_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    _child_main(sys.argv[1], sys.argv[2])

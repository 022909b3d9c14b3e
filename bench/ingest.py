"""Ingest capacity of one daphne process: frames per second stored and send-to-ack latency (issue 15, item 3).

    python -m bench.ingest '{"clients": 100, "samples": 600, "repeats": 3}'

The bench starts its own PostgreSQL cluster and Redis (``bench.private_servers``) and one daphne
process; ``bench.load`` drives ``clients`` simulated viewers from another process, each on its own
network, with one batch in flight as the player's client has. Every run uses fresh videos, as many
as the trust layer needs for each viewer to be handed every sample (``HYDRA_TRUST_REPLICAS`` viewers
per video), so every viewer sends all ``samples`` of its video: the socket's per-connection rate
limit, not the trust layer, bounds what one viewer may send. No Celery worker runs: the settlement
passes that stored features ask for stay queued (their cost is item 5's, measured by
``bench.hydra_path``); only the path from websocket to committed row and ack is measured.

The viewers connect and say hello first (a handshake is item 1's cost, and on a long video its
sample assignment is larger than all its batches); once all are ready the driver reads every
clock and lets them send (``bench.load``'s barrier), and reads the clocks again when every batch
has been answered, before the sockets close. So the CPU figures are the message path alone: daphne
(its whole process tree), the whole PostgreSQL cluster and Redis from ``/proc``, and the load
generator's own. ``transactions`` counts PostgreSQL's commits in that window (read-only ones
included: a flush of the ingest writer is two, the videos' read and the statement; a message of the
path before it was three); the machine is shared, so every run records the load average before and
after, and runs are repeated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.hydra_path import NETWORKS, ServerClock, _setup_site, make_videos
from bench.load import LoadConfig
from bench.machine import load_average
from bench.measure import REPO_ROOT, BenchError, last_words, median
from bench.private_servers import private_stack
from bench.stack import ORIGIN, Stack
from bench.wire import CLIENT_BATCH

FEATURE_SIZE = 1280
FPS = 24.0
# An idle PostgreSQL backend reports its statistics (the commit count) up to 10 s late.
STATISTICS_DELAY_S = 11.0


class NoWorker:
    """Stands in for the Celery worker in ``ServerClock``: none runs in the ingest bench."""

    def cpu_s(self) -> float:
        return 0.0


def long_clip(stack: Stack, samples: int) -> dict[str, Any]:
    """A video of ``samples`` seconds with random feature codes: ingest does not look at the pixels.

    The rendition is an empty file: the player page is not served, and the socket reads only the
    video's timing fields.
    """
    directory = stack.media_root.parent
    rendition = directory / "ingest-rendition.mp4"
    rendition.write_bytes(b"")
    codes_path = directory / "ingest-codes.npy"
    np.save(codes_path, np.random.default_rng(15).integers(0, 256, (samples, FEATURE_SIZE), dtype=np.uint8))
    return {
        "fps": FPS,
        "duration_ms": samples * 1000,
        "width": 640,
        "height": 360,
        "rendition": str(rendition),
        "codes_path": str(codes_path),
        "times": [1000 * index for index in range(samples)],
    }


def commits(stack: Stack) -> int:
    """Transactions committed in the bench database so far (PostgreSQL's statistics)."""
    import psycopg

    with psycopg.connect(stack.database_url, autocommit=True) as connection:
        return int(
            connection.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()[0]
        )


def ingest_run(
    stack: Stack,
    clip: dict[str, Any],
    daphne,
    url: str,
    *,
    clients: int,
    batch: int,
    deadline_s: float,
    pace_ms_per_frame: float,
):
    from django.conf import settings

    replicas = int(stack.env.get("HYDRA_TRUST_REPLICAS", settings.HYDRA_TRUST_REPLICAS))
    slugs = make_videos(max(1, clients // replicas), clip, stack.media_root)
    config = LoadConfig(
        urls=[url],
        slugs=slugs,
        times=clip["times"],
        codes_path=clip["codes_path"],
        clients=clients,
        batch=batch,
        deadline_s=deadline_s,
        origin=ORIGIN,
        run_tag=uuid.uuid4().hex[:8],
        network_octet=next(NETWORKS),
        pace_ms_per_frame=pace_ms_per_frame,
        barrier=True,
    )
    # The load generator's stderr goes to a file (a pipe nobody reads could fill): a failure quotes its tail.
    with tempfile.TemporaryFile("w+") as errors:
        load = subprocess.Popen(
            [sys.executable, "-m", "bench.load", json.dumps(asdict(config))],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        ready = load.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise BenchError(f"the load generator did not get its viewers ready: {_stopped(load, errors)}")
        time.sleep(STATISTICS_DELAY_S)  # the handshakes' commits reach the statistics before the count
        clock = ServerClock(stack, [daphne], NoWorker())
        load_before = load_average()
        commits_before = commits(stack)
        clock.begin()
        load.stdin.write("go\n")
        load.stdin.flush()
        if load.stdout.readline().strip() != "sent":
            raise BenchError(f"the load generator stopped before every batch was answered: {_stopped(load, errors)}")
        cpu = clock.elapsed()
        load_after = load_average()
        time.sleep(STATISTICS_DELAY_S)
        committed = commits(stack) - commits_before
        load.stdin.write("close\n")
        load.stdin.flush()
        output, _ = load.communicate(timeout=deadline_s + 120)
        result = json.loads(output.strip().splitlines()[-1])
        return _summary(result, cpu, committed, int(ready[1]), load_before, load_after)


def _stopped(load: subprocess.Popen, errors) -> str:
    """Ends a load generator that failed and returns the last lines it wrote to stderr."""
    load.kill()
    load.wait()
    errors.seek(0)
    return last_words(errors.read())


def _summary(load: dict, cpu: dict, committed: int, ready: int, load_before: list, load_after: list) -> dict:
    cpu.pop("worker")
    cpu["load_generator"] = load["load_generator_cpu_s_between_barriers"]
    frames = load["frames_accepted"]
    window = load["window_s"]
    return {
        "load_average_before": load_before,
        "load_average_after": load_after,
        "viewers_ready": ready,
        "frames_per_s": load["frames_per_s"],
        "ack_ms": load["ack_ms"],
        "handshake_ms": load["handshake_ms"],
        "frames_accepted": frames,
        "frames_assigned": load["frames_assigned"],
        "batches_answered": load["batches_answered"],
        "transactions": committed,
        "rows_per_transaction": frames / committed if committed else None,
        "window_s": window,
        "errors": load["errors"],
        "timed_out_clients": load["timed_out_clients"],
        "dropped_clients": load["dropped_clients"],
        "failed_clients": load["failed_clients"],
        "cpu_s": cpu,
        "cpu_ms_per_frame": {name: value * 1000 / frames for name, value in cpu.items()} if frames else None,
        "cpu_s_per_s": {name: value / window for name, value in cpu.items()} if frames and window > 0 else None,
    }


def measure(
    clients: int = 100,
    samples: int = 600,
    batch: int = CLIENT_BATCH,
    repeats: int = 3,
    deadline_s: float = 120.0,
    pace_ms_per_frame: float = 0.0,
    overrides: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``repeats`` runs of ``clients`` viewers each sending every one of ``samples`` samples, ``batch`` per message.

    Unpaced (``pace_ms_per_frame`` 0), each viewer sends its next batch as soon as the last is answered: the
    process's capacity, at a latency that is the batches in flight over that capacity (Little's law). Paced,
    each viewer computes one frame per ``pace_ms_per_frame`` (an offered load of ``clients`` x 1000 / pace
    frames per second, as browsers would offer it): the latency at that load.
    """
    with private_stack(**(overrides or {})) as stack:
        _setup_site(stack)
        clip = long_clip(stack, samples)
        daphne, url = stack.start_daphne()
        runs = [
            ingest_run(
                stack,
                clip,
                daphne,
                url,
                clients=clients,
                batch=batch,
                deadline_s=deadline_s,
                pace_ms_per_frame=pace_ms_per_frame,
            )
            for _ in range(repeats)
        ]
        daphne.check_alive()
        settings_used = {k: v for k, v in stack.env.items() if k.startswith(("HYDRA_WS", "HYDRA_RATE", "HYDRA_INGEST"))}
    complete = [run for run in runs if run["frames_accepted"]]
    return {
        "clients": clients,
        "samples_per_viewer": samples,
        "batch": batch,
        "pace_ms_per_frame": pace_ms_per_frame,
        "offered_frames_per_second": clients * 1000 / pace_ms_per_frame if pace_ms_per_frame else None,
        "settings": settings_used,
        "runs": runs,
        "ingest_frames_per_second": median(run["frames_per_s"] for run in complete) if complete else None,
        "ingest_ack_p50_ms": median(run["ack_ms"]["p50"] for run in complete) if complete else None,
        "ingest_ack_p99_ms": median(run["ack_ms"]["p99"] for run in complete) if complete else None,
        "ingest_frames_per_server_cpu_second": 1000
        / median(
            run["cpu_ms_per_frame"]["daphne"] + run["cpu_ms_per_frame"]["postgres"] + run["cpu_ms_per_frame"]["redis"]
            for run in complete
        )
        if complete
        else None,
        "ingest_load_generator_cpu_ms_per_frame": median(run["cpu_ms_per_frame"]["load_generator"] for run in complete)
        if complete
        else None,
        "ingest_server_cpu_ms_per_frame": median(
            run["cpu_ms_per_frame"]["daphne"] + run["cpu_ms_per_frame"]["postgres"] + run["cpu_ms_per_frame"]["redis"]
            for run in complete
        )
        if complete
        else None,
    }


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hydra_site.settings")
    arguments = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    output = arguments.pop("output", None)
    result = measure(**arguments)
    text = json.dumps(result, indent=1)
    if output:
        Path(output).write_text(text)
    print(text, flush=True)

"""Simulated viewers for the ingest benchmarks: the trust harness's honest viewers, timed.

    python -m bench.load '<json config>'

Each viewer is ``tests.trust.harness.run_viewer`` over a real websocket: handshake, hello,
then every assigned sample in batches of ``batch``, one batch in flight, as the player's
client does. The features sent are the server's own (uint8 codes of the rendition's
samples, computed once), so verification finds them honest. A wrapper around the harness's
transport times each batch from send to its answer. Viewers get distinct networks (a /24 each,
via X-Forwarded-For; daphne runs with ``--proxy-headers``) and device ids, as real viewers do.

Runs in its own process: the load generator's CPU is reported, and never counted as server CPU.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import django
import numpy as np

from bench.measure import percentile
from bench.wire import CLIENT_BATCH


@dataclass
class LoadConfig:
    urls: list[str]
    slugs: list[str]
    times: list[int]
    codes_path: str
    clients: int
    batch: int = CLIENT_BATCH
    deadline_s: float = 60.0
    origin: str = "http://127.0.0.1"
    run_tag: str = "run"
    device_prefix: str = ""
    network_octet: int = 10
    pace_ms_per_frame: float = 0.0
    handshake_only: bool = False  # connect, handshake, hello, ready, close: the cost of a connection alone
    # Every viewer connects and says hello first; then "ready" is printed and feature batches wait for a
    # line on stdin; once every batch is answered "sent" is printed and the sockets close after another
    # line. The driver reads server CPU between the two lines: the message path alone (bench.ingest).
    barrier: bool = False
    # A day's viewers (bench.site_day_replay): each entry {"slug", "sample_count", "start_s", "device_id", "ip",
    # "behaviour", "samples"} connects ``start_s`` after the run starts, sends at most ``samples`` of its assigned
    # samples (one message: the viewer leaves after its first batch) and leaves. ``times`` is the longest video's
    # grid; a video of ``sample_count`` samples has its prefix. Replaces ``clients`` and ``slugs``.
    schedule: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Timings:
    latencies_s: list[float] = field(default_factory=list)
    connected_at: list[float] = field(default_factory=list)
    acked: list[tuple[float, int]] = field(default_factory=list)
    first_send: float = float("inf")
    last_answer: float = 0.0

    def steady_frames_per_s(self, clients: int) -> float | None:
        """Frames acked per second once every viewer had its handshake (None if they never all connected)."""
        if len(self.connected_at) < clients or not self.acked:
            return None
        since = max(self.connected_at)
        frames = sum(count for at, count in self.acked if at > since)
        duration = self.last_answer - since
        return frames / duration if frames and duration > 0 else None


class Barrier:
    """Viewers that said hello wait here before their first batch, and before closing, until the driver says go."""

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.ready = 0
        self.all_ready = asyncio.Event()
        self.go = asyncio.Event()
        self.may_close = asyncio.Event()
        self.cpu_at_go = self.cpu_at_sent = 0.0

    def viewer_ready(self) -> None:
        self.ready += 1
        if self.ready >= self.clients:
            self.all_ready.set()

    async def hold(self, timeout: float) -> None:
        """Until every viewer is ready (or ``timeout``): say so, then wait for the driver's line."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_ready.wait(), timeout)
        print(f"ready {self.ready}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        self.cpu_at_go = time.process_time()
        self.go.set()

    async def release_closes(self) -> None:
        self.cpu_at_sent = time.process_time()
        print("sent", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        self.may_close.set()


class TimedTransport:
    """Wraps a harness transport; records the time from each binary message to the answer that follows.

    With ``pace_ms_per_frame`` it also holds each batch back until a browser computing one frame
    in that time would have finished it (the first frame's clock starts at the hello, or at the
    barrier's go). With a ``barrier``, the first batch waits for the go and the close for the driver.
    """

    def __init__(self, inner, timings: Timings, pace_ms_per_frame: float = 0.0, barrier: Barrier | None = None):
        self.inner = inner
        self.timings = timings
        self.pace_s = pace_ms_per_frame / 1000
        self.barrier = barrier
        self.computing_since = time.perf_counter()
        self.frames_computed = 0
        self.sent_at: float | None = None

    async def send_text(self, text: str) -> None:
        self.computing_since = time.perf_counter()
        await self.inner.send_text(text)

    async def send_bytes(self, data: bytes) -> None:
        if self.barrier is not None and not self.barrier.go.is_set():
            await self.barrier.go.wait()
            self.computing_since = time.perf_counter()
        if self.pace_s:
            self.frames_computed += int.from_bytes(data[8:10], "little")  # the batch header's count
            ready_at = self.computing_since + self.frames_computed * self.pace_s
            await asyncio.sleep(max(0.0, ready_at - time.perf_counter()))
        self.sent_at = time.perf_counter()
        self.timings.first_send = min(self.timings.first_send, self.sent_at)
        await self.inner.send_bytes(data)

    async def receive(self, timeout: float) -> dict[str, Any] | None:
        message = await self.inner.receive(timeout)
        now = time.perf_counter()
        if message is not None and message.get("type") == "handshake":
            self.timings.connected_at.append(now)
        if message is not None and message.get("type") == "ready" and self.barrier is not None:
            self.barrier.viewer_ready()
        if message is not None and message.get("type") == "ack":
            self.timings.acked.append((now, len(message.get("accepted", [])) + len(message.get("duplicates", []))))
        if self.sent_at is not None and message is not None:
            self.timings.latencies_s.append(now - self.sent_at)
            self.timings.last_answer = max(self.timings.last_answer, now)
            self.sent_at = None
        return message

    async def close(self) -> None:
        if self.barrier is not None:
            await self.barrier.may_close.wait()
        await self.inner.close()


class LeavingTransport:
    """A viewer who leaves after ``messages`` feature batches: the next batch is never sent, and the answer it
    waits for is the end of the socket (``run_viewer`` then closes)."""

    def __init__(self, inner, messages: int) -> None:
        self.inner = inner
        self.left = messages
        self.gone = False

    async def send_text(self, text: str) -> None:
        await self.inner.send_text(text)

    async def send_bytes(self, data: bytes) -> None:
        if self.left <= 0:
            self.gone = True
            return
        self.left -= 1
        await self.inner.send_bytes(data)

    async def receive(self, timeout: float) -> dict[str, Any] | None:
        return None if self.gone else await self.inner.receive(timeout)

    async def close(self) -> None:
        await self.inner.close()


def device_id(prefix: str, index: int) -> str:
    """The id a viewer's browser keeps in localStorage; the same prefix means the same (returning) devices."""
    return f"bench-{prefix}-{index:05d}"


def viewer_address(first_octet: int, index: int) -> str:
    """Every viewer in its own /24, so that the trust layer counts any two of them as independent."""
    return f"{first_octet}.{index // 256 % 256}.{index % 256}.1"


async def handshake_only(viewer, connect, truth, *, timeout: float, **_ignored):
    """A viewer who opens the analysis socket, says hello and leaves before sending any feature."""
    viewer.video = truth.slug
    transport = await connect(viewer, f"/ws/analysis/{truth.slug}/")
    try:
        handshake = await transport.receive(timeout)
        if handshake is None or handshake.get("type") != "handshake":
            viewer.errors.append(f"no handshake: {handshake}")
            return viewer
        viewer.session_id = handshake["session"]
        await transport.send_text(json.dumps({"type": "hello", "backend": "wasm", "device_id": viewer.device_id}))
        if await transport.receive(timeout) is None:
            viewer.closed = True
    finally:
        await transport.close()
    return viewer


def _viewers(config: LoadConfig):
    from tests.trust.harness import Behaviour, Viewer

    return [
        Viewer(
            name=f"{config.run_tag}-{index}",
            behaviour=Behaviour.HONEST,
            device_id=device_id(config.device_prefix or config.run_tag, index),
            ip=viewer_address(config.network_octet, index),
        )
        for index in range(config.clients)
    ]


async def _run(config: LoadConfig) -> dict[str, Any]:
    from inference.ml.quantise import dequantise
    from tests.trust.harness import VideoTruth, WebsocketsTransport, run_viewer

    features = dequantise(np.load(config.codes_path))
    truths = {
        slug: VideoTruth(slug=slug, times=config.times, server=features, by_profile={"chromium-software": features})
        for slug in config.slugs
    }
    if config.schedule:
        for entry in config.schedule:
            length = entry["sample_count"]
            truths.setdefault(
                entry["slug"],
                VideoTruth(
                    slug=entry["slug"],
                    times=config.times[:length],
                    server=features[:length],
                    by_profile={"chromium-software": features[:length]},
                ),
            )
        return await _scheduled(config, truths)
    timings = Timings()
    connectors = [WebsocketsTransport.connector(url, config.origin) for url in config.urls]
    barrier = Barrier(config.clients) if config.barrier else None

    def timed_connector(index: int):
        async def connect(viewer, path):
            transport = await connectors[index % len(connectors)](viewer, path)
            return TimedTransport(transport, timings, config.pace_ms_per_frame, barrier)

        return connect

    viewers = _viewers(config)
    watch = handshake_only if config.handshake_only else run_viewer
    started = time.perf_counter()
    jobs = [
        asyncio.ensure_future(
            watch(
                viewer,
                timed_connector(index),
                truths[config.slugs[index % len(config.slugs)]],
                others=[],
                head=None,
                batch=config.batch,
                timeout=config.deadline_s,
            )
        )
        for index, viewer in enumerate(viewers)
    ]
    if barrier is not None:
        await barrier.hold(config.deadline_s)
        sent = asyncio.ensure_future(_all_answered(viewers, timings, config.clients))
        await asyncio.wait([sent], timeout=config.deadline_s)
        await barrier.release_closes()
    done, pending = await asyncio.wait(jobs, timeout=config.deadline_s)
    for job in pending:
        job.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    exceptions = [job.exception() for job in done if job.exception() is not None]
    failures = collections.Counter(type(exc).__name__ for exc in exceptions)
    examples = {type(exc).__name__: str(exc)[:200] for exc in exceptions}
    errors = collections.Counter(error for viewer in viewers for error in viewer.errors)
    accepted = sum(len(viewer.accepted) for viewer in viewers)
    window = timings.last_answer - timings.first_send if timings.latencies_s else float("nan")
    connect_ms = [(at - started) * 1000 for at in timings.connected_at]
    latencies_ms = [latency * 1000 for latency in timings.latencies_s]
    return {
        "clients": config.clients,
        "daphne_processes": len(config.urls),
        "batch": config.batch,
        "frames_accepted": accepted,
        "frames_assigned": sum(len(viewer.assigned) for viewer in viewers),
        "batches_answered": len(latencies_ms),
        "window_s": window,
        "elapsed_s": time.perf_counter() - started,
        "frames_per_s": accepted / window if window and window > 0 else 0.0,
        "steady_frames_per_s": timings.steady_frames_per_s(config.clients),
        "connected_clients": len(connect_ms),
        "handshake_ms": {q: percentile(connect_ms, float(q[1:])) for q in ("p50", "p99")},
        "ack_ms": {q: percentile(latencies_ms, float(q[1:])) for q in ("p50", "p90", "p99")}
        | {"max": max(latencies_ms, default=float("nan"))},
        "timed_out_clients": len(pending),
        "dropped_clients": sum(1 for viewer in viewers if viewer.closed),
        "failed_clients": dict(failures),
        "failure_examples": examples,
        "errors": dict(errors),
        "load_generator_cpu_s_between_barriers": barrier.cpu_at_sent - barrier.cpu_at_go if barrier else None,
    }


async def _scheduled(config: LoadConfig, truths: dict[str, Any]) -> dict[str, Any]:
    """The day's viewers, each at its time; what they were assigned and what the server accepted."""
    from tests.trust.harness import Behaviour, Viewer, WebsocketsTransport, run_viewer

    connect = WebsocketsTransport.connector(config.urls[0], config.origin)
    started = time.perf_counter()

    async def visit(entry: dict[str, Any]) -> Viewer:
        behaviour = Behaviour(entry["behaviour"])
        viewer = Viewer(name=entry["device_id"], behaviour=behaviour, device_id=entry["device_id"], ip=entry["ip"])
        await asyncio.sleep(max(0.0, started + entry["start_s"] - time.perf_counter()))
        truth = truths[entry["slug"]]
        if entry["samples"] <= 0:
            return await handshake_only(viewer, connect, truth, timeout=config.deadline_s)

        async def leaving(viewer, path):
            return LeavingTransport(await connect(viewer, path), messages=1)

        others = [other for slug, other in truths.items() if slug != entry["slug"]][:1]
        return await run_viewer(
            viewer, leaving, truth, others=others, head=None, batch=entry["samples"], timeout=config.deadline_s
        )

    outcomes = await asyncio.gather(*(visit(entry) for entry in config.schedule), return_exceptions=True)
    done = [
        (outcome, entry)
        for outcome, entry in zip(outcomes, config.schedule, strict=True)
        if not isinstance(outcome, BaseException)
    ]
    viewers = [viewer for viewer, _ in done]
    failures = collections.Counter(type(o).__name__ for o in outcomes if isinstance(o, BaseException))
    return {
        "visits": len(config.schedule),
        "connected": sum(1 for viewer in viewers if viewer.session_id),
        "frames_assigned": sum(len(viewer.assigned) for viewer in viewers),
        "frames_sent": sum(min(len(viewer.assigned), entry["samples"]) for viewer, entry in done),
        "frames_accepted": sum(len(viewer.accepted) for viewer in viewers),
        "messages": sum(1 for viewer, entry in done if entry["samples"] > 0 and viewer.assigned),
        "errors": dict(collections.Counter(error for viewer in viewers for error in viewer.errors)),
        "failed_visits": dict(failures),
        "elapsed_s": time.perf_counter() - started,
    }


async def _all_answered(viewers, timings: Timings, clients: int) -> None:
    """Until every assigned sample of every viewer that got ready was answered (or the viewer stopped)."""
    while True:
        answered = sum(count for _, count in timings.acked)
        expected = sum(len(viewer.assigned) for viewer in viewers if not viewer.closed and not viewer.errors)
        if answered >= expected and len(timings.connected_at) >= clients:
            return
        await asyncio.sleep(0.05)


def run(config: LoadConfig) -> dict[str, Any]:
    result = asyncio.run(_run(config))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["load_generator_cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hydra_site.settings")
    # The trust harness reads the verification tolerance from the settings and imports the models.
    django.setup()
    print(json.dumps(run(LoadConfig(**json.loads(sys.argv[1])))), flush=True)

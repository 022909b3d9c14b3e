"""(1b), (2) and the component costs: the Hydra path's server cost, and ingest capacity, on real servers.

The bench starts its own PostgreSQL cluster and Redis (``bench.private_servers``). A scratch
database gets the active model version, the default heads and ready videos whose rendition is a
bench clip; daphne processes and one Celery worker (solo pool) serve them; ``bench.load`` drives
simulated viewers against them from another process. For each run the CPU time of every server
process is read from ``/proc`` before and after: the daphne process(es), the Celery worker
(heads, verdicts, and the trust layer's recomputations), and the whole PostgreSQL cluster and
Redis, exited backends included. "After" is read once the system has settled: the task queue
is empty, every video's verdict covers all its samples, and the worker's CPU has stopped moving.

Server cost per analysed frame = server CPU / distinct (video, sample) pairs stored. With one
viewer per video each sample is delivered once; more viewers per video multiply the ingest
work, which the per-received-frame figure shows.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.load import LoadConfig
from bench.measure import REPO_ROOT, BenchError, last_words, median, run_isolated, tree_cpu_s
from bench.private_servers import private_stack
from bench.report import lookup
from bench.stack import ORIGIN, ServerProcess, Stack
from bench.wire import CLIENT_BATCH

SETTLE_QUIET_S = 1.0
GIVE_UP_QUIET_S = 5.0
UNDER_REPLICATED_GRACE_S = 10.0
SMALL_BATCH = 4  # the message-cost run: 15 messages for 60 samples, within the socket's burst of 16
# Server-verified results: far past the point where spot checks reach their floor (about 70 at the defaults).
# A record grows by at most HYDRA_TRUST_RECORD_PER_DAY a day, so a seeded record is back-dated to have earned it.
RETURNING_RECORD = 1_000
# Each run's viewers come from fresh networks, so per-address rate limits never carry over between runs.
NETWORKS = itertools.cycle(range(11, 224))


def _setup_site(stack: Stack) -> None:
    stack.configure_this_process()
    import django

    django.setup()
    from django.core.management import call_command

    from inference.services import registry

    call_command("migrate", verbosity=0, interactive=False)
    registry.ensure_default_heads(registry.ensure_model_version())
    _close_db()


def trust_rules() -> dict[str, Any]:
    """The running site's settings that decide who computes what (``bench.site_day.TrustRules``)."""
    from django.conf import settings

    return {
        "replicas": settings.HYDRA_TRUST_REPLICAS,
        "min_assignment": settings.HYDRA_TRUST_MIN_ASSIGNMENT,
        "audit_rate": settings.HYDRA_TRUST_AUDIT_RATE,
        "probation_results": settings.HYDRA_TRUST_PROBATION_RESULTS,
        "spot_check_floor": settings.HYDRA_TRUST_SPOT_CHECK_FLOOR,
        "coverage_deadline_s": settings.HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS,
        "coverage_slack_s": settings.HYDRA_TRUST_COVERAGE_SLACK_SECONDS,
        "server_seconds_per_sample": settings.HYDRA_TRUST_SERVER_SECONDS_PER_SAMPLE,
        "min_audience": settings.HYDRA_TRUST_MIN_AUDIENCE,
        "arrival_window_s": settings.HYDRA_TRUST_ARRIVAL_WINDOW_SECONDS,
        "record_per_day": settings.HYDRA_TRUST_RECORD_PER_DAY,
        "probation_checks": settings.HYDRA_TRUST_PROBATION_CHECKS,
        "probation_check_rate": settings.HYDRA_TRUST_PROBATION_CHECK_RATE,
        "coverage_max_deadline_s": settings.HYDRA_TRUST_COVERAGE_MAX_DEADLINE_SECONDS,
        "coverage_seconds_per_clean_upload": settings.HYDRA_TRUST_COVERAGE_SECONDS_PER_CLEAN_UPLOAD,
        "uploader_record_per_day": settings.HYDRA_TRUST_UPLOADER_RECORD_PER_DAY,
        "coverage_audience_views": settings.HYDRA_TRUST_COVERAGE_AUDIENCE_VIEWS,
        "sample_interval_ms": settings.HYDRA_SAMPLE_INTERVAL_MS,
        "max_duration_s": settings.HYDRA_MAX_DURATION_SECONDS,
        "rate_per_second": settings.HYDRA_WS_RATE_PER_SECOND,
        "burst": settings.HYDRA_WS_RATE_BURST,
        "client_batch": CLIENT_BATCH,
    }


def _close_db() -> None:
    from django.db import connections

    connections.close_all()


def make_videos(
    count: int, clip: dict[str, Any], media_root: Path, visibility: str = "published", uploader: str = "bench-uploader"
) -> list[str]:
    """``count`` ready videos sharing the bench rendition (hard links), by ``uploader``; returns their slugs."""
    from django.contrib.auth import get_user_model

    from videos.models import Video

    owner, _ = get_user_model().objects.get_or_create(username=uploader)
    slugs = []
    for index in range(count):
        video = Video(
            owner=owner,
            title=f"bench {index}",
            status=Video.Status.READY,
            visibility=visibility,
            fps=clip["fps"],
            duration_ms=clip["duration_ms"],
            width=clip["width"],
            height=clip["height"],
            rendition_width=clip["width"],
            rendition_height=clip["height"],
            rendition_fps=clip["fps"],
            rendition_duration_ms=clip["duration_ms"],
        )
        name = f"renditions/{video.media_key}.mp4"
        (media_root / "renditions").mkdir(parents=True, exist_ok=True)
        os.link(clip["rendition"], media_root / name)
        video.rendition.name = name
        video.save()
        slugs.append(video.slug)
    _close_db()
    return slugs


def _analysed_samples(slugs: list[str]) -> tuple[int, bool]:
    """Distinct (video, sample) pairs stored, and whether every video has a verdict covering all of them."""
    from django.db.models import Count, Min

    from inference.models import FrameFeature, Verdict

    stored = (
        FrameFeature.objects.filter(video__slug__in=slugs, status=FrameFeature.Status.ACCEPTED)
        .values("video_id", "sample_ms")
        .distinct()
        .count()
    )
    verdicts = Verdict.objects.filter(video__slug__in=slugs).aggregate(videos=Count("video", distinct=True))
    lowest = Verdict.objects.filter(video__slug__in=slugs).aggregate(coverage=Min("coverage"))["coverage"]
    complete = verdicts["videos"] == len(slugs) and lowest is not None and lowest >= 1.0 - 1e-9
    _close_db()
    return stored, complete


def recomputed_samples(slugs: list[str]) -> dict[str, int]:
    """Samples the server computed itself for these videos (the trust layer's share), by reason."""
    from django.db.models import Count

    from inference.models import Recomputation

    rows = (
        Recomputation.objects.filter(video__slug__in=slugs, done_at__isnull=False)
        .values("reason")
        .annotate(samples=Count("id"))
    )
    counts = {row["reason"]: row["samples"] for row in rows}
    _close_db()
    return counts


def seed_returning_devices(prefix: str, count: int, network_octet: int) -> None:
    """Give these devices (on their networks) a long record of server-verified results: spot checks at the floor.

    This is the steady state of viewers who come back. First-time devices on fresh videos with no
    established audience have every agreed sample checked by the small-audience rule (docs/trust.md,
    defence 12); beside an established audience a new device costs at most one probation check a visit.
    """
    from django.conf import settings
    from django.utils import timezone

    from bench.load import device_id, viewer_address
    from inference.models import Contributor
    from inference.trust.contributors import record_key_of

    keys = [
        record_key_of(ip=viewer_address(network_octet, index), device_id=device_id(prefix, index))
        for index in range(count)
    ]
    for key in keys:
        Contributor.objects.update_or_create(
            key=key, defaults={"consecutive_valid": RETURNING_RECORD, "valid_total": RETURNING_RECORD}
        )
    earned_since = timezone.now() - timedelta(days=RETURNING_RECORD / settings.HYDRA_TRUST_RECORD_PER_DAY + 1)
    Contributor.objects.filter(key__in=keys).update(created_at=earned_since)
    _close_db()


def seed_established_audience(slugs: list[str], prefix: str, network_octet: int, first_index: int) -> None:
    """Give each video a past audience of ``HYDRA_TRUST_MIN_AUDIENCE`` returning viewers who arrived apart.

    On a video with a smaller audience the server computes every sample peers agree on
    (``audience_is_small``); a returning viewer of a watched video is the steady state these runs
    price. The past viewers are devices ``first_index`` onwards of ``prefix`` (seeded with
    ``seed_returning_devices``), one session each, ``HYDRA_TRUST_ARRIVAL_WINDOW_SECONDS`` apart.
    """
    from django.conf import settings
    from django.utils import timezone

    from bench.load import device_id, viewer_address
    from inference.models import ClientSession
    from inference.selectors import active_model_version
    from videos.models import Video

    model_version = active_model_version()
    audience = settings.HYDRA_TRUST_MIN_AUDIENCE
    apart = timedelta(seconds=settings.HYDRA_TRUST_ARRIVAL_WINDOW_SECONDS + 1)
    now = timezone.now()
    for video in Video.objects.filter(slug__in=slugs):
        for offset in range(audience):
            index = first_index + offset
            session = ClientSession.objects.create(
                video=video,
                model_version=model_version,
                device_id=device_id(prefix, index),
                ip_address=viewer_address(network_octet, index),
            )
            arrived = now - apart * (audience - offset)
            ClientSession.objects.filter(pk=session.pk).update(created_at=arrived, last_seen_at=arrived)
    _close_db()


def settle(
    stack: Stack, servers: list[ServerProcess], slugs: list[str], timeout_s: float, require_verdicts: bool
) -> dict[str, Any]:
    """Wait until the queue is empty and every server process quiet (and, if required, verdicts cover every video).

    Quiet: less than 10 ms of CPU in a quarter of a second, for a second. A run that leaves a
    backlog (viewers cut at the deadline) must not spill into the next run's figures. Verdicts
    that stay incomplete while everything is quiet (a viewer dropped before sending all its
    samples) are given up on after ``GIVE_UP_QUIET_S``: ``complete`` says so.
    """
    started = time.monotonic()
    last_cpu, quiet_since = sum(s.cpu_s() for s in servers), time.monotonic()
    while time.monotonic() - started < timeout_s:
        for server in servers:
            server.check_alive()
        time.sleep(0.25)
        cpu = sum(s.cpu_s() for s in servers)
        if cpu - last_cpu > 0.01:
            last_cpu, quiet_since = cpu, time.monotonic()
            continue
        quiet_for = time.monotonic() - quiet_since
        if stack.queue_length() == 0 and quiet_for >= SETTLE_QUIET_S:
            stored, complete = _analysed_samples(slugs)
            if complete or not require_verdicts or quiet_for >= GIVE_UP_QUIET_S:
                return {
                    "settled": True,
                    "complete": complete,
                    "settle_s": time.monotonic() - started,
                    "analysed_samples": stored,
                }
    stored, complete = _analysed_samples(slugs)
    return {"settled": False, "complete": complete, "settle_s": time.monotonic() - started, "analysed_samples": stored}


class ServerClock:
    """CPU seconds of every server process between two readings: daphne, the worker, and the bench's own
    PostgreSQL cluster and Redis, each read over its whole process tree (exited children included), and any
    ``others`` (name: process id) such as nginx."""

    def __init__(
        self, stack: Stack, daphnes: list[ServerProcess], worker: ServerProcess, others: dict[str, int] | None = None
    ) -> None:
        self.stack, self.daphnes, self.worker, self.others = stack, daphnes, worker, others or {}
        self.start: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        return {
            "daphne": sum(d.cpu_s() for d in self.daphnes),
            "worker": self.worker.cpu_s(),
            "postgres": self.stack.postgres_cpu_s(),
            "redis": self.stack.redis_cpu_s(),
            **{name: tree_cpu_s(pid) for name, pid in self.others.items()},
        }

    def begin(self) -> None:
        self.start = self._read()

    def elapsed(self) -> dict[str, float]:
        end = self._read()
        spent = {name: end[name] - self.start[name] for name in end}
        spent["total"] = sum(spent.values())
        return spent


def per_frame(cpu_s: dict[str, float], frames: int) -> dict[str, float] | None:
    return {name: value / frames * 1000 for name, value in cpu_s.items()} if frames else None


def run_load(config: LoadConfig, timeout_s: float) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.load", json.dumps(asdict(config))],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchError(f"load generator failed: {last_words(completed.stderr)}\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measured_run(
    stack: Stack,
    clip: dict[str, Any],
    daphnes: list[tuple[ServerProcess, str]],
    worker: ServerProcess,
    *,
    clients: int,
    videos: int,
    deadline_s: float,
    settle_timeout_s: float,
    require_verdicts: bool,
    returning: bool,
    slugs: list[str] | None = None,
    handshake_only: bool = False,
    batch: int = CLIENT_BATCH,
) -> dict[str, Any]:
    """One load run on fresh videos (or on ``slugs``): throughput, latencies, and server CPU per frame once settled.

    ``returning``: the viewers' devices have long records (spot checks at their floor), else first-time devices.
    ``handshake_only``: viewers connect, say hello and leave.
    """
    device_prefix = uuid.uuid4().hex[:8]
    network_octet = next(NETWORKS)
    from django.conf import settings

    audience = settings.HYDRA_TRUST_MIN_AUDIENCE if returning and not slugs else 0
    if returning:
        seed_returning_devices(device_prefix, clients + audience, network_octet)
    slugs = slugs or make_videos(videos, clip, stack.media_root)
    if audience:
        seed_established_audience(slugs, device_prefix, network_octet, first_index=clients)
    clock = ServerClock(stack, [d for d, _ in daphnes], worker)
    clock.begin()
    config = LoadConfig(
        urls=[url for _, url in daphnes],
        slugs=slugs,
        times=clip["times"],
        codes_path=clip["codes_path"],
        clients=clients,
        deadline_s=deadline_s,
        origin=ORIGIN,
        run_tag=uuid.uuid4().hex[:8],
        device_prefix=device_prefix,
        network_octet=network_octet,
        handshake_only=handshake_only,
        batch=batch,
    )
    load = run_load(config, timeout_s=deadline_s + 120)
    settled = settle(stack, [*(d for d, _ in daphnes), worker], slugs, settle_timeout_s, require_verdicts)
    cpu = clock.elapsed()
    received = load["frames_accepted"]
    analysed = settled["analysed_samples"]
    recomputed = recomputed_samples(slugs)
    return {
        **load,
        **settled,
        "slugs": slugs,
        "videos": videos,
        "returning_viewers": returning,
        "recomputed_samples": recomputed,
        "recomputed_samples_total": sum(recomputed.values()),
        "server_share": sum(recomputed.values()) / analysed if analysed else None,
        "server_cpu_s": cpu,
        "server_cpu_ms_per_received_frame": per_frame(cpu, received),
        "server_cpu_ms_per_analysed_frame": per_frame(cpu, analysed),
    }


def time_to_verdict(
    stack: Stack,
    clip: dict[str, Any],
    daphne: tuple[ServerProcess, str],
    worker: ServerProcess,
    *,
    viewers: int,
    pace_ms_per_frame: float | None,
    timeout_s: float,
) -> dict[str, Any]:
    """Seconds from ``video_ready`` (sent as the transcoder sends it) to a verdict covering every sample.

    With no viewers the video is held (no viewer can reach it), so the trust layer's coverage
    deadline starts the server's own analysis at once; a published video that nobody watches
    waits for its countdown first, which is added (configured, not measured) in ``published_s``.
    The servers' CPU per sample is measured too: with no viewers it is the server-only path as
    the site itself runs it (decode, CNN, store, heads, verdict), through the same processes.
    """
    from django.conf import settings

    from inference.trust.services import coverage_countdown_seconds
    from videos.models import Video
    from videos.signals import video_ready

    visibility = Video.Visibility.PUBLISHED if viewers else Video.Visibility.HELD
    slug = make_videos(1, clip, stack.media_root, visibility=visibility)[0]
    video = Video.objects.get(slug=slug)
    config = LoadConfig(
        urls=[daphne[1]],
        slugs=[slug],
        times=clip["times"],
        codes_path=clip["codes_path"],
        clients=viewers,
        deadline_s=timeout_s,
        run_tag=uuid.uuid4().hex[:8],
        network_octet=next(NETWORKS),
        pace_ms_per_frame=pace_ms_per_frame or 0.0,
    )
    clock = ServerClock(stack, [daphne[0]], worker)
    clock.begin()
    started = time.perf_counter()
    video_ready.send(sender=Video, video=video)
    _close_db()
    load = (
        subprocess.Popen(
            [sys.executable, "-m", "bench.load", json.dumps(asdict(config))],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if viewers
        else None
    )
    under_replicated = 0 < viewers < settings.HYDRA_TRUST_REPLICAS
    if under_replicated and load is not None:
        load.wait(timeout=timeout_s)  # nothing can be accepted before they are done: then give it a little longer
        timeout_s = time.perf_counter() - started + UNDER_REPLICATED_GRACE_S
    seconds = None
    while time.perf_counter() - started < timeout_s:
        worker.check_alive()
        if _analysed_samples([slug])[1]:
            seconds = time.perf_counter() - started
            break
        time.sleep(0.1)
    if load is not None:
        load.wait(timeout=timeout_s)
    settled = settle(stack, [daphne[0], worker], [slug], timeout_s, require_verdicts=seconds is not None)
    result = {
        "seconds": seconds,
        "viewers": viewers,
        "recomputed_samples": recomputed_samples([slug]),
        "server_cpu_ms_per_frame": per_frame(clock.elapsed(), settled["analysed_samples"]),
    }
    if viewers:
        pace = f"each computing one frame per {pace_ms_per_frame:.0f} ms" if pace_ms_per_frame else "unpaced"
        how = f"{len(clip['times'])} samples; {viewers} simulated viewers from video_ready, {pace}"
        if under_replicated and seconds is None:
            how += (
                f"; no verdict: fewer viewers than HYDRA_TRUST_REPLICAS={settings.HYDRA_TRUST_REPLICAS}, "
                "so nothing is accepted before the coverage deadline (then as with 0 viewers, published)"
            )
        return result | {"how": how}
    countdown = coverage_countdown_seconds(len(clip["times"]), settings.HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS)
    return result | {
        "published_s": seconds + countdown if seconds is not None else None,
        "how": f"{len(clip['times'])} samples, server only (held video); published and unwatched: "
        f"+{countdown} s countdown at the base deadline (a new uploader's)",
    }


def _ranged_gets(url: str, *, size: int, requests: int, chunk: int) -> int:
    """``requests`` Range GETs of ``chunk`` bytes, one after another, each at a different offset (nothing served
    from a cache that a real seeker would not hit); the bytes received."""
    served = 0
    for index in range(requests):
        start = index * chunk % max(1, size - chunk)
        request = urllib.request.Request(url, headers={"Range": f"bytes={start}-{start + chunk - 1}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 206:
                raise BenchError(f"a Range request was answered {response.status}, not 206")
            served += len(response.read())
    return served


def range_requests(
    stack: Stack, daphne: tuple[ServerProcess, str], worker: ServerProcess, slug: str, *, requests: int, chunk: int
) -> dict[str, Any]:
    """Server CPU of one HTTP Range request for ``chunk`` bytes of a rendition, as the hidden seeker makes them,
    on its signed URL (``videos.media_urls``): through Django (daphne, the embedded default) and through nginx in
    front of the same daphne (production: hydra_site/deploy/nginx-site.conf, nginx's own CPU counted).

    Sent one after another from this process (the driver's CPU is not counted).
    """
    from tests.videos.live_nginx import running_nginx
    from videos.media_urls import MediaFile, issue
    from videos.models import Video

    base = daphne[1].replace("ws://", "http://")
    video = Video.objects.get(slug=slug)
    size, signed = video.rendition.size, issue(video, MediaFile.RENDITION)
    _close_db()
    results: dict[str, Any] = {}
    with running_nginx(base, stack.media_root.parent / "nginx") as nginx:
        for server, url in (("django", base), ("nginx", nginx.url)):
            clock = ServerClock(stack, [daphne[0]], worker, {"nginx": nginx.process.pid})
            clock.begin()
            served = _ranged_gets(url + signed, size=size, requests=requests, chunk=chunk)
            settle(stack, [daphne[0], worker], [slug], timeout_s=30, require_verdicts=False)
            cpu = clock.elapsed()
            results[server] = {
                "requests": requests,
                "bytes_per_request": served / requests,
                "server_cpu_ms_per_request": {name: value / requests * 1000 for name, value in cpu.items()},
            }
    return results


def composition_check(
    stack: Stack, clip: dict, servers: Servers, *, rows: dict, covered: list[str], viewers: int, common: dict
) -> dict[str, Any]:
    """Do the component costs add up, as the site-day model adds them? One window in which, at the same time,
    returning viewers watch fresh videos (as many per video as the trust layer wants replicas), returning viewers
    watch videos already covered, and the server analyses a held video nobody can reach; its measured server CPU
    against the sum of the per-visit, per-extra-viewer and per-fallback-frame costs measured separately."""
    from django.conf import settings

    from videos.models import Video
    from videos.signals import video_ready

    daphne, url = servers.daphnes[0]
    replicas = int(stack.env.get("HYDRA_TRUST_REPLICAS", settings.HYDRA_TRUST_REPLICAS))
    fresh = make_videos(max(1, viewers // replicas), clip, stack.media_root)
    held = make_videos(1, clip, stack.media_root, visibility=Video.Visibility.HELD)
    configs = []
    for slugs, clients in ((fresh, len(fresh) * replicas), (covered, viewers)):
        prefix, network_octet = uuid.uuid4().hex[:8], next(NETWORKS)
        audience = settings.HYDRA_TRUST_MIN_AUDIENCE if slugs is fresh else 0  # covered videos have theirs
        seed_returning_devices(prefix, clients + audience, network_octet)
        if audience:
            seed_established_audience(slugs, prefix, network_octet, first_index=clients)
        configs.append(
            LoadConfig(
                urls=[url],
                slugs=slugs,
                times=clip["times"],
                codes_path=clip["codes_path"],
                clients=clients,
                deadline_s=common["deadline_s"],
                origin=ORIGIN,
                run_tag=uuid.uuid4().hex[:8],
                device_prefix=prefix,
                network_octet=network_octet,
            )
        )
    clock = ServerClock(stack, [daphne], servers.worker)
    clock.begin()
    video_ready.send(sender=Video, video=Video.objects.get(slug=held[0]))
    _close_db()
    loads = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.load", json.dumps(asdict(config))],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for config in configs
    ]
    outputs = [load.communicate(timeout=common["deadline_s"] + 120)[0] for load in loads]
    settled = settle(stack, [daphne, servers.worker], [*fresh, *held], common["settle_timeout_s"], True)
    measured = clock.elapsed()["total"] * 1000
    visits, extras = (json.loads(output.strip().splitlines()[-1]) for output in outputs)
    predicted = {
        "returning_visits": visits["connected_clients"] * rows["returning_device_visit"]["total"],
        "extra_viewers": extras["connected_clients"] * rows["extra_viewer_on_covered_video"]["total"],
        "fallback_frames": len(clip["times"]) * rows["fallback_frame"]["total"],
    }
    total = sum(predicted.values())
    return {
        "settled": settled["settled"],
        "complete": settled["complete"],
        "predicted_ms": predicted,
        "predicted_total_ms": total,
        "measured_total_ms": measured,
        "measured_over_predicted": measured / total if total else None,
    }


def _per_unit(cpu_s: dict[str, float], units: float) -> dict[str, float] | None:
    return {name: value / units * 1000 for name, value in cpu_s.items()} if units else None


def decision_alone(stack: Stack, slug: str, calls: int) -> dict[str, float]:
    """CPU of the player page's decision (``selectors.page_analyses``) per call, warm: this process,
    PostgreSQL and Redis."""
    from inference import selectors
    from videos.models import Video

    video = Video.objects.get(slug=slug)
    selectors.page_analyses(video)  # warm: connections open, the covered flag cached
    start = (time.process_time(), stack.postgres_cpu_s(), stack.redis_cpu_s())
    for _ in range(calls):
        selectors.page_analyses(video)
    end = (time.process_time(), stack.postgres_cpu_s(), stack.redis_cpu_s())
    spent = dict(zip(("django", "postgres", "redis"), (b - a for a, b in zip(start, end, strict=True)), strict=True))
    spent["total"] = sum(spent.values())
    _close_db()
    return {name: value / calls * 1000 for name, value in spent.items()}


def component_costs(
    stack: Stack,
    clip: dict,
    servers: Servers,
    *,
    returning_runs: list[dict],
    first_time_runs: list[dict],
    viewers: int,
    common: dict,
) -> dict[str, Any]:
    """Each cost the docs and the site-day model use, measured by its own run or as a stated difference of runs.

    - connection with handshake: ``viewers`` sockets that handshake, say hello and leave (one per fresh video);
    - analysing visit on a covered video: ``viewers`` returning viewers of videos a cost run has already covered
      open the socket (what every extra viewer did before the page decided; now only an audit draw does);
    - page decision: ``selectors.page_analyses`` on a covered video, per call (this process, PostgreSQL, Redis);
    - extra viewer visit: page decision + ``HYDRA_TRUST_AUDIT_RATE`` x analysing visit (the page itself is
      served with or without Hydra, so it is not counted);
    - message: the same viewers' work sent ``SMALL_BATCH`` samples per message instead of ``CLIENT_BATCH``: the
      difference in daphne CPU per extra message (connections, storage and settlement cancel out; both stay
      within the socket's burst allowance, so no message is refused);
    - settlement per feature: worker + PostgreSQL + Redis CPU of that run, less connections and spot checks,
      per analysed sample;
    - spot check: (first-time run - returning run) CPU / (difference in samples the server recomputed);
    - analysis per video: worker CPU of a returning cost run per video (heads, verdict, settlement);
    - fallback frame: a held video that no viewer can reach, analysed by the server through the site;
    - Range request: one hidden-seeker fetch of one second of the rendition;
    - visits: server CPU of a cost run per viewer, returning and first-time devices.
    """
    first = servers.daphnes[:1]
    connections = measured_run(
        stack,
        clip,
        first,
        servers.worker,
        clients=viewers,
        videos=viewers,
        require_verdicts=False,
        returning=True,
        handshake_only=True,
        **common,
    )
    connection = _per_unit(connections["server_cpu_s"], connections["connected_clients"])
    covered = returning_runs[-1]["slugs"]
    extra = measured_run(
        stack,
        clip,
        first,
        servers.worker,
        clients=viewers,
        videos=len(covered),
        require_verdicts=False,
        returning=True,
        slugs=covered,
        **common,
    )
    fallback = time_to_verdict(
        stack, clip, servers.daphnes[0], servers.worker, viewers=0, pace_ms_per_frame=None, timeout_s=120
    )
    per_message = {
        batch: measured_run(
            stack,
            clip,
            first,
            servers.worker,
            clients=viewers,
            videos=viewers,
            require_verdicts=False,
            returning=True,
            batch=batch,
            **common,
        )
        for batch in (SMALL_BATCH, CLIENT_BATCH)
    }
    small, large = per_message[SMALL_BATCH], per_message[CLIENT_BATCH]
    extra_messages = small["batches_answered"] - large["batches_answered"]
    extra_daphne = small["server_cpu_s"]["daphne"] - large["server_cpu_s"]["daphne"]
    chunk = int(Path(clip["rendition"]).stat().st_size / (clip["duration_ms"] / 1000))
    ranges = range_requests(stack, servers.daphnes[0], servers.worker, covered[0], requests=50, chunk=chunk)

    def total(runs: list[dict], *path: str) -> float | None:
        values = [run for run in runs if run.get("settled")]
        if not values:
            return None
        return median(lookup(run, *path) for run in values)

    rows: dict[str, Any] = {
        "connection_with_handshake": connection,
        "extra_viewer_on_covered_video": _per_unit(extra["server_cpu_s"], extra["connected_clients"])
        | {"samples_sent_per_viewer": extra["frames_assigned"] / max(1, extra["connected_clients"])},
        "fallback_frame": fallback["server_cpu_ms_per_frame"],
        "range_request": ranges["nginx"]["server_cpu_ms_per_request"] | {"bytes": ranges["nginx"]["bytes_per_request"]},
        "range_request_django": ranges["django"]["server_cpu_ms_per_request"]
        | {"bytes": ranges["django"]["bytes_per_request"]},
        "message": {"daphne": extra_daphne * 1000 / extra_messages} if extra_messages > 0 else None,
    }
    decision = decision_alone(stack, covered[0], calls=500)
    rows["page_decision"] = decision
    if rows["extra_viewer_on_covered_video"]:
        from django.conf import settings

        rate = settings.HYDRA_TRUST_AUDIT_RATE
        rows["extra_viewer_visit"] = {
            "total": decision["total"] + rate * rows["extra_viewer_on_covered_video"]["total"],
            "audit_rate": rate,
        }
    run = returning_runs[-1] if returning_runs else None
    if run and run.get("settled") and connection:
        cpu = run["server_cpu_s"]
        clients = run["connected_clients"]
        analysed = run["analysed_samples"]
        rows["analysis_per_video"] = {"worker": cpu["worker"] * 1000 / run["videos"]}
        returning_visit = total(returning_runs, "server_cpu_s", "total")
        rows["returning_device_visit"] = {"total": returning_visit * 1000 / clients}
        recomputed_returning = total(returning_runs, "recomputed_samples_total")
        first_visit = total(first_time_runs, "server_cpu_s", "total")
        recomputed_first = total(first_time_runs, "recomputed_samples_total")
        spot = None
        if first_visit is not None and recomputed_first and recomputed_first > recomputed_returning:
            spot = (first_visit - returning_visit) * 1000 / (recomputed_first - recomputed_returning)
            rows["spot_check"] = {"total": spot}
            rows["new_device_visit"] = {"total": first_visit * 1000 / clients}
        backend = cpu["worker"] + cpu["postgres"] + cpu["redis"]
        backend_ms = (
            backend * 1000
            - clients * (connection["worker"] + connection["postgres"] + connection["redis"])
            - (spot or 0.0) * recomputed_returning
        )
        rows["settlement_per_feature"] = {"worker_postgres_redis": backend_ms / analysed}
    needed = ("returning_device_visit", "extra_viewer_on_covered_video", "fallback_frame")
    composition = (
        composition_check(stack, clip, servers, rows=rows, covered=covered, viewers=viewers, common=common)
        if all(rows.get(name) for name in needed)
        else None
    )
    return {
        "viewers": viewers,
        "rows": rows,
        "composition": composition,
        "runs": {"connections": connections, "extra_viewers": extra, "messages": per_message},
    }


def idle_cpu_per_s(stack: Stack, daphnes: list[ServerProcess], worker: ServerProcess, seconds: float) -> dict:
    """What the servers burn doing nothing (polling the broker, timers): included in every figure, not subtracted."""
    clock = ServerClock(stack, daphnes, worker)
    clock.begin()
    time.sleep(seconds)
    return {name: value / seconds for name, value in clock.elapsed().items()}


class Servers:
    """The daphne processes and the worker of one configuration, with their peak memory kept after they stop."""

    def __init__(self, stack: Stack, daphne_count: int) -> None:
        self.stack = stack
        self.daphnes = [stack.start_daphne() for _ in range(daphne_count)]
        self.worker = stack.start_worker()

    def peaks(self) -> dict[str, float]:
        return {
            "daphne": max(server.peak_rss_mb() for server, _ in self.daphnes),
            "celery_worker": self.worker.peak_rss_mb(),
        }


def cost_runs(
    stack: Stack, clip: dict, servers: Servers, *, videos: int, repeats: int, returning: bool, common: dict
) -> list[dict]:
    """(1b): as many viewers per video as the trust layer wants independent replicas, each sample received that often.

    An unreported warm-up with first-time devices comes first: its spot checks make the worker
    load the CNN, which a long-running worker has done long ago.
    """
    from django.conf import settings

    per_video = int(stack.env.get("HYDRA_TRUST_REPLICAS", settings.HYDRA_TRUST_REPLICAS))
    first = servers.daphnes[:1]
    measured_run(
        stack,
        clip,
        first,
        servers.worker,
        clients=per_video,
        videos=1,
        require_verdicts=True,
        returning=False,
        **common,
    )
    return [
        measured_run(
            stack,
            clip,
            first,
            servers.worker,
            clients=videos * per_video,
            videos=videos,
            require_verdicts=True,
            returning=returning,
            **common,
        )
        | {"viewers_per_video": per_video}
        for _ in range(repeats)
    ]


def measure(
    clip_seconds: int = 12,
    clip_width: int = 1280,
    clip_height: int = 720,
    cost_videos: int = 10,
    cost_repeats: int = 3,
    ingest_clients: tuple[int, ...] = (100,),
    daphne_counts: tuple[int, ...] = (1,),
    ingest_videos: int = 10,
    deadline_s: float = 60.0,
    settle_timeout_s: float = 120.0,
    verdict_viewers: tuple[int, ...] = (),
    pace_ms_per_frame: float | None = None,
    verdict_timeout_s: float = 120.0,
    variants: dict[str, dict[str, str]] | None = None,
    first_time_viewers: bool = False,
    component_viewers: int = 0,
) -> dict[str, Any]:
    """(1b) per-frame server cost, (2) ingest runs per client count, (5) time to verdict.

    (1b) is measured with returning viewers (the trust layer's steady state) and, with
    ``first_time_viewers``, again with devices on their probation.
    ``variants``: other settings (name -> environment) under which the (1b) runs are repeated,
    on freshly started servers, to show what the figure depends on.
    """
    clip = run_isolated(
        "bench.server_only:rendition_codes", timeout=600, seconds=clip_seconds, width=clip_width, height=clip_height
    )
    common = {"deadline_s": deadline_s, "settle_timeout_s": settle_timeout_s}
    peaks: dict[str, float] = {}
    with private_stack() as stack:
        _setup_site(stack)
        rules = trust_rules()
        servers = Servers(stack, max(daphne_counts))
        idle = idle_cpu_per_s(stack, [d for d, _ in servers.daphnes], servers.worker, seconds=2.0)
        costs = cost_runs(stack, clip, servers, videos=cost_videos, repeats=cost_repeats, returning=True, common=common)
        first_time = (
            cost_runs(stack, clip, servers, videos=cost_videos, repeats=cost_repeats, returning=False, common=common)
            if first_time_viewers
            else []
        )
        components = (
            component_costs(
                stack,
                clip,
                servers,
                returning_runs=costs,
                first_time_runs=first_time,
                viewers=component_viewers,
                common=common,
            )
            if component_viewers
            else None
        )
        ingest_runs = [
            measured_run(
                stack,
                clip,
                servers.daphnes[:count],
                servers.worker,
                clients=clients,
                videos=ingest_videos,
                require_verdicts=False,
                returning=True,
                **common,
            )
            for count in daphne_counts
            for clients in ingest_clients
        ]
        verdicts = {
            str(viewers): time_to_verdict(
                stack,
                clip,
                servers.daphnes[0],
                servers.worker,
                viewers=viewers,
                pace_ms_per_frame=pace_ms_per_frame,
                timeout_s=verdict_timeout_s,
            )
            for viewers in verdict_viewers
        }
        peaks = servers.peaks()
        variant_runs = {}
        for name, overrides in (variants or {}).items():
            stack.stop()
            stack.overrides.update(overrides)
            servers = Servers(stack, 1)
            variant_runs[name] = {
                "settings": overrides,
                "cost_runs": cost_runs(
                    stack, clip, servers, videos=cost_videos, repeats=cost_repeats, returning=True, common=common
                ),
            }
            for key in overrides:
                stack.overrides.pop(key)
    return {
        "clip": {k: clip[k] for k in ("width", "height", "fps", "duration_ms")} | {"samples": len(clip["times"])},
        "server_settings": {k: v for k, v in stack.env.items() if k.startswith(("HYDRA_", "DATABASE_CONN", "DJANGO_"))},
        "idle_cpu_s_per_s": idle,
        "cost_runs": costs,
        "cost_runs_first_time_viewers": first_time,
        "components": components,
        "trust_rules": rules,
        "variants": variant_runs,
        "ingest_runs": ingest_runs,
        "time_to_verdict": verdicts,
        "peak_rss_mb": peaks,
        "database": stack.database_url.rsplit("/", 1)[-1],
    }

"""The server side of the Hydra path, started for real: a scratch database, daphne and a Celery worker.

The benchmark owns a scratch PostgreSQL database (``<name>_bench``, dropped and created
again each run) on a cluster it started itself (``bench.private_servers``), a media folder
under ``var/bench/`` and a private Redis; servers listen on free loopback ports. Server
processes use persistent database connections (``DATABASE_CONN_MAX_AGE``), as a deployment
would; PostgreSQL and Redis CPU is read from their whole process trees, exited backends included.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.measure import REPO_ROOT, BenchError, tree_cpu_s, tree_peak_rss_mb

VENV_BIN = Path(sys.executable).parent
ORIGIN = "http://127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scratch_database(base_url: str) -> str:
    """Drop and create ``<name>_bench`` on the server of ``base_url``; returns its URL."""
    import psycopg

    parts = urlsplit(base_url)
    name = parts.path.lstrip("/") + "_bench"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_s(self) -> float:
        return tree_cpu_s(self.pid)

    def peak_rss_mb(self) -> float:
        return tree_peak_rss_mb(self.pid)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"{self.name} exited ({self.process.returncode}):\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Stack:
    """Environment shared by the driver (this process) and the servers it starts."""

    database_url: str
    redis_url: str
    media_root: Path
    postgres_cpu_s: Callable[[], float]
    redis_cpu_s: Callable[[], float]
    overrides: dict[str, str] = field(default_factory=dict)
    servers: list[ServerProcess] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "hydra_site.settings",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "HYDRA_MEDIA_ROOT": str(self.media_root),
            "HYDRA_TASKS_EAGER": "0",
            "DATABASE_CONN_MAX_AGE": "600",
            "DJANGO_DEBUG": "0",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            **self.overrides,
        }

    def configure_this_process(self) -> None:
        """Point this process's Django at the scratch database and set it up (call before django.setup)."""
        os.environ.update(self.env)
        os.environ["DATABASE_CONN_MAX_AGE"] = "0"  # the driver's own queries must not hold backends open

    def _start(self, name: str, command: list[str]) -> ServerProcess:
        log = self.media_root.parent / f"{name}.log"
        handle = open(log, "w")  # noqa: SIM115 - the child process owns it from here
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT)
        server = ServerProcess(name, process, log)
        self.servers.append(server)
        return server

    def start_daphne(self) -> tuple[ServerProcess, str]:
        """One daphne process on a free port; returns it and its ws:// base URL once it accepts connections."""
        port = free_port()
        server = self._start(
            f"daphne-{port}",
            [
                str(VENV_BIN / "daphne"),
                "--proxy-headers",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "hydra_site.asgi:application",
            ],
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            server.check_alive()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return server, f"ws://127.0.0.1:{port}"
            time.sleep(0.1)
        raise BenchError(f"daphne on port {port} did not start")

    def start_worker(self) -> ServerProcess:
        """One Celery worker, solo pool (all its work in one process, so its CPU time is easy to read)."""
        server = self._start(
            "celery",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "hydra_site",
                "worker",
                "-Q",
                self.env.get("HYDRA_CELERY_QUEUE", "hydra"),
                "--pool=solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=info",
            ],
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            server.check_alive()
            if " ready." in server.log.read_text():
                return server
            time.sleep(0.2)
        raise BenchError("the Celery worker did not become ready")

    def queue_length(self) -> int:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        return int(client.llen(self.env.get("HYDRA_CELERY_QUEUE", "hydra")))

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()


def new_stack(
    base_database_url: str,
    redis_url: str,
    postgres_cpu_s: Callable[[], float],
    redis_cpu_s: Callable[[], float],
    **overrides: str,
) -> Stack:
    """A fresh scratch database, media folder and server logs (under var/bench/); the clocks of PostgreSQL and Redis."""
    media_root = REPO_ROOT / "var" / "bench" / "media"
    shutil.rmtree(media_root, ignore_errors=True)
    media_root.mkdir(parents=True)
    for old_log in media_root.parent.glob("*.log"):
        old_log.unlink()
    return Stack(
        scratch_database(base_database_url), redis_url, media_root, postgres_cpu_s, redis_cpu_s, dict(overrides)
    )

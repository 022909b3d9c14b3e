"""PostgreSQL and Redis instances of the bench's own, started and stopped by it, so that all their CPU is counted.

A shared PostgreSQL serves other programs, and its backends are not the bench's to read: a
backend that exits before the end of a run (Celery's Django fix-up closes the connection
around every task) takes its CPU time with it. A private cluster solves both: every backend is
a child of its postmaster, and once a child exits the postmaster reaps it, which adds its CPU
to the postmaster's ``cutime``/``cstime`` in ``/proc/<postmaster>/stat``. So postmaster (with
reaped children) plus its live children is every PostgreSQL CPU second of the run, background
processes (checkpointer, autovacuum, WAL writer) included. The same holds for a private
redis-server (channel layer and Celery broker). Both run with their packaged defaults, on a
free loopback port, in a temporary directory removed on stop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.measure import BenchError, tree_cpu_s
from bench.stack import Stack, free_port, new_stack

POSTGRES_BIN = Path(os.environ.get("HYDRA_BENCH_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
POSTGRES_USER = "postgres"


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the ``postgres`` account when we are root."""
    return ["runuser", "-u", POSTGRES_USER, "--", *command] if os.geteuid() == 0 else command


@dataclass
class PrivatePostgres:
    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgres://{POSTGRES_USER}@127.0.0.1:{self.port}/hydra_bench"

    @property
    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def cpu_s(self) -> float:
        """Every CPU second of the cluster so far: postmaster, its reaped children and its live ones."""
        return tree_cpu_s(self.postmaster_pid)

    def stop(self) -> None:
        subprocess.run(
            _as_postgres([str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def start_postgres() -> PrivatePostgres:
    """initdb into a temporary directory, start on a free port (socket in the same directory), create the database."""
    directory = Path(tempfile.mkdtemp(prefix="hydra-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, POSTGRES_USER)
    server = PrivatePostgres(directory, free_port())

    def run(command: list[str]) -> None:
        completed = subprocess.run(_as_postgres(command), capture_output=True, text=True, check=False, timeout=120)
        if completed.returncode != 0:
            server.stop()
            raise BenchError(f"{command[0]} failed:\n{completed.stderr[-2000:]}")

    run([str(POSTGRES_BIN / "initdb"), "-D", str(server.data), "-U", POSTGRES_USER, "--auth=trust", "-E", "UTF8"])
    options = f"-p {server.port} -k {directory} -c listen_addresses=127.0.0.1"
    run(
        [
            str(POSTGRES_BIN / "pg_ctl"),
            "-D",
            str(server.data),
            "-o",
            options,
            "-l",
            str(directory / "log"),
            "-w",
            "start",
        ]
    )
    run([str(POSTGRES_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", POSTGRES_USER, "hydra_bench"])
    return server


@dataclass
class PrivateRedis:
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cpu_s(self) -> float:
        return tree_cpu_s(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def start_redis() -> PrivateRedis:
    """redis-server on a free port, nothing persisted (a deployment's broker would not snapshot either)."""
    import redis

    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = PrivateRedis(process, port)
    client = redis.Redis.from_url(server.url)
    for _ in range(100):
        try:
            client.ping()
            return server
        except redis.ConnectionError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    server.stop()
    raise BenchError("the bench's redis-server did not start")


@contextmanager
def private_stack(**overrides: str) -> Iterator[Stack]:
    """A bench stack on its own PostgreSQL and Redis (a private Celery queue), all stopped on exit."""
    postgres, redis_server = start_postgres(), start_redis()
    stack = new_stack(
        postgres.url,
        redis_server.url,
        postgres.cpu_s,
        redis_server.cpu_s,
        HYDRA_CELERY_QUEUE=f"bench-{uuid.uuid4().hex[:8]}",
        **overrides,
    )
    try:
        yield stack
    finally:
        stack.stop()
        redis_server.stop()
        postgres.stop()

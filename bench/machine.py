"""What the figures were measured on: hardware, load, and the versions of everything that runs."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("django", "channels", "daphne", "celery", "psycopg", "av", "numpy", "tensorflow-cpu", "keras")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def _command_version(command: list[str]) -> str | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _postgres_version(database_url: str) -> str | None:
    """The server's version, asked of its ``postgres`` database (the bench's own may not exist yet)."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    admin = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
    try:
        with psycopg.connect(admin, connect_timeout=5) as connection:
            return str(connection.execute("SHOW server_version").fetchone()[0])
    except psycopg.Error:
        return None


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def describe(database_url: str | None) -> dict:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_memory_gib(), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "chromium": _command_version(["/usr/bin/chromium", "--version"]),
        "postgresql": _postgres_version(database_url) if database_url else None,
        "redis": _command_version(["redis-server", "--version"]),
        "load_average_at_start": load_average(),
    }

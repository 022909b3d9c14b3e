"""A real daphne process serving Hydra from the test database.

For what the in-process test client cannot do: websockets through a real ASGI server, streaming
as daphne does it, and Playwright's sync API (which cannot run inside pytest-django's event loop).
Tests using it need ``transactional_db`` (the server process must see their rows) and PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The test database as a DATABASE_URL, for server and worker processes started by tests."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgresql://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for_port(process: subprocess.Popen, port: int, log: Path, name: str = "daphne") -> None:
    """The server is up when it accepts a connection; if it exits first, its log says why."""
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            try:
                process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"{name} exited: {log.read_text(errors='replace')}") from None
    raise RuntimeError(f"{name} did not start listening")


@contextmanager
def running_daphne(log: Path, access_log: Path | None = None, **env: str) -> Iterator[str]:
    """Serve the site with daphne on a free port from the test database; yields its base URL.

    ``env`` adds environment settings for the server (e.g. ``HYDRA_MEDIA_ROOT``); its output goes to ``log``,
    and a line per request it answered to ``access_log`` when given.
    """
    if connection.vendor != "postgresql":
        pytest.skip("the daphne process needs the PostgreSQL test database (DATABASE_URL)")
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)),
                *(("--access-log", str(access_log)) if access_log else ()),
                "hydra_site.asgi:application",
            ],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url(), **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(process, port, log)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)

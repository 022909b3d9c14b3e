"""A live Hydra for browser tests: daphne in a subprocess on the test database, headless Chromium.

Playwright's sync API cannot run inside an event loop, and websockets need a real ASGI server,
so the site runs as its own process against the test database (``transactional_db``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from videos.models import Video
from videos.services import ingest_upload

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "static" / "js" / "build" / "analysis.js"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(process: subprocess.Popen, port: int, log: Path) -> None:
    """Daphne is up when it accepts a connection; if it exits first, its log says why."""
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            try:
                process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"daphne exited: {log.read_text(errors='replace')}") from None
    raise RuntimeError("daphne did not start listening")


@contextmanager
def running_site(media_root: Path, log: Path) -> Iterator[str]:
    """Serve the site with daphne from the test database; yields its base URL."""
    if not BUILD.exists():
        raise RuntimeError("no browser build: run `make assets` (node static/js/build.mjs) first")
    port = free_port()
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "HYDRA_MEDIA_ROOT": str(media_root),
        "HYDRA_MODEL_ROOT": str(settings.HYDRA_MODEL_ROOT),
        "HYDRA_SAMPLE_INTERVAL_MS": str(settings.HYDRA_SAMPLE_INTERVAL_MS),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "hydra_site.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(process, port, log)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=20)


def ready_video(make_video, title: str = "analysed clip", **clip) -> Video:
    """Upload a synthetic clip through the site's own ingest (transcoded in-process) and return it ready."""
    path = make_video(**clip)
    owner, _ = get_user_model().objects.get_or_create(username="uploader")
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="video/mp4")
    video = ingest_upload(owner=owner, upload=upload, title=title)
    video.refresh_from_db()
    assert video.status == Video.Status.READY, video.failure_reason
    return video


ANALYSIS_STATE = "document.getElementById('hydra-analysis')?.dataset.state"


def analysis_state_is(*states: str) -> str:
    """A JS predicate for page.wait_for_function: the client reports one of these states."""
    return f"{list(states)!r}.includes({ANALYSIS_STATE})"

"""Fixtures shared by every test package. Videos are generated with PyAV, never downloaded."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.cache import caches

from inference.ingest import close_flush_connection
from tests.browser import launch_chromium, watch_console_errors
from videos.synthetic import write_video


@pytest.fixture(scope="session", autouse=True)
def flush_connection_closed_at_the_end(django_db_setup):
    """The ingest writer's thread keeps its database connection, which would stop the test database
    from being dropped after the session."""
    yield
    close_flush_connection()


@pytest.fixture(autouse=True)
def full_rate_limit_buckets() -> None:
    """Rate-limit buckets live in the shared cache (Redis under make test): every test starts with full ones."""
    from hydra_site.ratelimit import reset_all

    reset_all()


@pytest.fixture(autouse=True)
def forgotten_process_memos() -> None:
    """Per-process memos (the active model version, covered videos) would carry one test's database into the next."""
    caches["process"].clear()


@pytest.fixture
def media_root(tmp_path: Path, settings) -> Path:
    """Each test writes media to its own folder."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """``make_video(name="clip.mp4", seconds=3, pattern="bars", ...)`` writes a clip and returns its path."""

    def _make(name: str = "clip.mp4", **kwargs) -> Path:
        return write_video(tmp_path / "inputs" / name, **kwargs)

    return _make


@pytest.fixture(scope="session")
def media_url_for_live_server():
    """Media is never served by URL (MEDIA_URL is None: every file goes through a view that checks who may see it),
    but Django's live server wraps a media handler that needs a string; give it a prefix no view uses."""
    from django.test.utils import override_settings

    with override_settings(MEDIA_URL="/_live-server-media-is-not-served/"):
        yield


@pytest.fixture(scope="session")
def live_server(django_db_setup, media_url_for_live_server, live_server):
    """The live server, started after (so stopped before) the test database, with a usable MEDIA_URL."""
    return live_server


@pytest.fixture
def console_allowed() -> list[str]:
    """Patterns of console errors a browser test provokes on purpose (e.g. an HTTP 413 it asks for); extend it."""
    return []


@pytest.fixture
def chromium(console_allowed: list[str]):
    """Headless Chromium launched the one way (``tests.browser``), closed after the test; the test fails
    on any console error or uncaught exception of its pages that ``console_allowed`` does not name."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        errors = watch_console_errors(browser)
        try:
            yield browser
        finally:
            browser.close()
        unexpected = [e for e in errors if not any(re.search(pattern, e) for pattern in console_allowed)]
        assert not unexpected, f"console errors in the browser: {unexpected}"

"""A moderator sees, in the admin, that violence detection is off until it is trained."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def site_url(transactional_db):
    """A real daphne process serving the site on the test database."""
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs DATABASE_URL (PostgreSQL) shared with a server process")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"}
    daphne = Path(sys.executable).parent / "daphne"
    process = subprocess.Popen(
        [str(daphne), "-b", "127.0.0.1", "-p", str(port), "hydra_site.asgi:application"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # the event is the port accepting connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("daphne did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.browser
def test_the_head_admin_says_violence_is_untrained(default_heads, site_url):
    get_user_model().objects.create_superuser("root", "root@example.com", "correct horse battery")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(f"{site_url}/admin/login/?next=/admin/inference/head/")
        page.fill("#id_username", "root")
        page.fill("#id_password", "correct horse battery")
        page.click("input[type=submit]")
        page.wait_for_selector("#result_list")
        rows = {
            row.query_selector("th").inner_text().strip(): row.inner_text()
            for row in page.query_selector_all("#result_list tbody tr")
        }
        page.screenshot(path=str(SCREENSHOTS / "analysis-head-admin.png"), full_page=True)
        browser.close()
    assert "Untrained: produces no score" in rows["violence"]
    assert "v1 active" in rows["nudity"]

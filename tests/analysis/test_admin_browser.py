"""A moderator sees, in the admin, that violence detection is off until it is trained."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import sync_playwright

from tests.browser import SCREENSHOTS, launch_chromium
from tests.live_site import running_daphne


@pytest.fixture
def site_url(transactional_db, tmp_path):
    """A real daphne process serving the site on the test database."""
    with running_daphne(tmp_path / "daphne.log") as url:
        yield url


@pytest.mark.browser
def test_the_head_admin_says_violence_is_untrained(default_heads, site_url):
    get_user_model().objects.create_superuser("root", "root@example.com", "correct horse battery")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
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

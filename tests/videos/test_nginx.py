"""Production's media path: a real nginx (hydra_site/deploy/nginx-site.conf) in front of a real daphne.

nginx checks the signed media URLs itself and sends the bytes from disk; daphne (with
HYDRA_MEDIA_SERVER=nginx, so it would refuse them anyway) never sees a media request. The attacks on the
signed URLs (guessing, expired, tampered, another file's token) are refused by nginx and by Django alike:
one rule, two servers.
"""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import connections
from django.test import Client, override_settings

from inference.ml.artefacts import ensure_artefacts
from inference.services.registry import ensure_model_version
from moderation import services as moderation_services
from moderation.models import Decision, PolicyReason, ReportReason
from tests.browser import AUTOPLAY_ARGS, PLAY_THEN_SEEK, SCREENSHOTS, launch_chromium, watch_console_errors
from tests.inference.live_site import analysis_state_is, ready_video, running_site
from tests.videos.live_nginx import NginxSite, running_nginx
from videos import services
from videos.media_urls import REFUSED_MESSAGE, MediaFile, issue, signed_path, url_for_viewer
from videos.models import Video

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
REFUSED = REFUSED_MESSAGE.encode() + b"\n"


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory) -> Path:
    """collectstatic's output, as production's nginx serves /static/ from it."""
    root = tmp_path_factory.mktemp("static")
    with override_settings(STATIC_ROOT=root):
        call_command("collectstatic", "--noinput", verbosity=0)
    return root


@dataclass(frozen=True)
class Site:
    nginx: NginxSite
    daphne_access_log: Path


@pytest.fixture
def site(media_root: Path, tmp_path: Path, settings, collected_static: Path) -> Iterator[Site]:
    settings.STATIC_ROOT = collected_static
    daphne_access_log = tmp_path / "daphne-access.log"
    with (
        running_site(
            media_root,
            tmp_path / "daphne.log",
            daphne_access_log,
            HYDRA_MEDIA_SERVER="nginx",
            HYDRA_TRUSTED_PROXIES="127.0.0.1/32",
        ) as daphne,
        running_nginx(daphne, tmp_path / "nginx") as nginx,
    ):
        yield Site(nginx, daphne_access_log)


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class Served:
    """One way to ask nginx (over HTTP) or Django's embedded server (in-process, no database read allowed) for a
    media URL, so each attack runs against both."""

    def __init__(self, server: str, site_url: str | None, django_assert_num_queries) -> None:
        self.server, self.site_url, self.assert_num_queries = server, site_url, django_assert_num_queries

    def get(self, url: str, range_header: str | None = None) -> tuple[int, bytes]:
        headers = {"Range": range_header} if range_header else {}
        if self.server == "nginx":
            status, _, body = fetch(self.site_url + url, headers)
            return status, body
        with self.assert_num_queries(0):
            response = Client().get(url, headers=headers)
            body = b"".join(response.streaming_content) if response.streaming else response.content
        return response.status_code, body


@pytest.fixture(params=["nginx", "django"])
def served(request, django_assert_num_queries, settings) -> Served:
    if request.param == "nginx":
        site = request.getfixturevalue("site")
        return Served("nginx", site.nginx.url, django_assert_num_queries)
    settings.HYDRA_MEDIA_SERVER = "django"
    return Served("django", None, django_assert_num_queries)


def test_signed_urls_serve_ranges_and_every_attack_is_refused_without_bytes(served, ready_video, owner):
    video = ready_video(owner, title="mine")
    other = ready_video(owner, title="theirs")
    data = Path(video.rendition.path).read_bytes()
    url = issue(video, MediaFile.RENDITION)
    path, query = url.split("?")
    rendition_path = path

    assert served.get(url, f"bytes=100-{len(data) - 1}") == (206, data[100:])
    assert served.get(url, "bytes=0-9") == (206, data[:10])
    status, poster = served.get(issue(video, MediaFile.POSTER))
    assert status == 200 and poster[:3] == b"\xff\xd8\xff"

    other_url = issue(other, MediaFile.RENDITION)
    other_path, other_query = other_url.split("?")
    expired = signed_path(rendition_path, int(time.time()) - 1)  # signed correctly, but its time has passed
    token = re.search(r"token=([^&]+)", query).group(1)
    attacks = {
        "no token (guessing the path from the storage key)": rendition_path,
        "another video's token on this path": f"{rendition_path}?{other_query}",
        "this token on another video's path": f"{other_path}?{query}",
        "the poster's token on the rendition": f"{rendition_path}?{issue(video, MediaFile.POSTER).split('?')[1]}",
        "expired": expired,
        "expiry moved later, token kept": f"{rendition_path}?token={token}&expires={int(time.time()) + 10**6}",
        "token altered": f"{rendition_path}?token={token[:-2]}AA&expires={query.split('expires=')[1]}",
        "expiry that is not a number": f"{rendition_path}?token={token}&expires=soon",
    }
    for name, attack in attacks.items():
        status, body = served.get(attack, "bytes=0-99")
        assert (status, body) == (403, REFUSED), (served.server, name)

    for not_served in (
        f"/media/originals/{video.storage_key}.mp4?{query}",
        f"/media/renditions/../originals/x?{query}",
    ):
        status, body = served.get(not_served)
        assert status == 404 and data[:100] not in body, (served.server, not_served)


def test_a_deleted_video_stops_being_served_at_once(served, ready_video, owner):
    """Deletion removes the files: URLs already issued answer 404."""
    deleted = ready_video(owner, title="deleted")
    deleted_url = issue(deleted, MediaFile.RENDITION)
    status, first_bytes = served.get(deleted_url, "bytes=0-9")
    assert status == 206
    services.delete_video(deleted, actor=owner)
    status, body = served.get(deleted_url, "bytes=0-9")
    assert status == 404 and first_bytes not in body


@pytest.mark.parametrize("action", [Decision.Action.REMOVE, Decision.Action.RESTRICT])
def test_urls_copied_before_a_moderator_removes_or_restricts_a_video_stop_working_at_once(
    served, ready_video, owner, stranger, action
):
    """The attack: the uploader copies the signed URLs of their own video and posts them elsewhere. Once a
    moderator acts on a report (the real flow, through moderation.services), those URLs answer 404 at once, long
    before they expire; a moderator, who may still watch the video, gets new URLs that work."""
    video = ready_video(owner, title="reported")
    data = Path(video.rendition.path).read_bytes()
    copied = {media: url_for_viewer(owner, video, media) for media in MediaFile}
    assert served.get(copied[MediaFile.RENDITION], "bytes=0-9") == (206, data[:10])
    moderator = User.objects.create_user("mod", password="pw-mod-1", is_staff=True)
    moderator.groups.add(Group.objects.get(name="Moderators"))

    report = moderation_services.report_video(video, stranger, ReportReason.SEXUAL)
    moderation_services.decide_case(report.case, moderator, action, PolicyReason.objects.get(code="sexual-content"))

    for media, url in copied.items():
        status, body = served.get(url, "bytes=0-9")
        assert status == 404 and body[:3] != b"\xff\xd8\xff" and data[:10] not in body, (served.server, media)
    video.refresh_from_db()
    assert video.visibility != Video.Visibility.PUBLISHED
    moderator = User.objects.get(pk=moderator.pk)  # drop the permission cache
    fresh = url_for_viewer(moderator, video, MediaFile.RENDITION)
    assert fresh is not None and fresh != copied[MediaFile.RENDITION]
    assert served.get(fresh, "bytes=0-9") == (206, data[:10])
    status, poster = served.get(url_for_viewer(moderator, video, MediaFile.POSTER))
    assert status == 200 and poster[:3] == b"\xff\xd8\xff"


@pytest.fixture
def page():
    """A Chromium page that may play without a click; the test fails on any console error."""
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop lives in this thread too
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, extra_args=AUTOPLAY_ARGS)
        errors = watch_console_errors(browser)
        try:
            yield browser.new_context(viewport={"width": 1100, "height": 820}).new_page()
        finally:
            browser.close()
            connections.close_all()
        assert not errors, f"console errors in the browser: {errors}"


@pytest.mark.browser
def test_the_player_plays_seeks_and_analyses_through_nginx_and_no_range_request_reaches_daphne(
    site, page, make_video, settings
):
    ensure_artefacts(settings.HYDRA_MODEL_ROOT, settings.HYDRA_NSFWJS_DIR)
    ensure_model_version()
    video = ready_video(make_video, "through nginx", seconds=8, fps=12, width=640, height=360, pattern="noise")
    size = Path(video.rendition.path).stat().st_size

    page.goto(f"{site.nginx.url}/v/{video.slug}/?hydra_backend=wasm")
    played = page.evaluate(PLAY_THEN_SEEK, -1)
    assert played["playedTo"] > 0.5 and played["isolated"], played
    assert abs(played["seekedTo"] - (played["duration"] - 1)) < 0.1, played
    page.wait_for_function(analysis_state_is("done", "error"), timeout=180_000)
    state = page.evaluate("({...document.getElementById('hydra-analysis').dataset})")
    assert state["state"] == "done", state  # the hidden seeker's frames and the websocket, all through nginx
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "player-through-nginx.png"))

    media = [row for row in site.nginx.requests() if row[1].startswith("/media/")]
    ranged = [row for row in media if row[4].startswith("bytes=") and row[2] == 206]
    assert [row for row in ranged if not row[4].startswith("bytes=0-")], f"no seek's Range request: {media}"
    assert sum(row[3] for row in ranged) >= size / 2, "nginx sent the video's bytes"
    assert {row[1] for row in media} == {
        f"/media/renditions/{video.media_key}.mp4",
        f"/media/posters/{video.media_key}.jpg",
    }
    assert all(row[2] in (200, 206, 304) for row in media), media
    proxied = site.daphne_access_log.read_text()
    assert f"/v/{video.slug}/" in proxied and f"/ws/analysis/{video.slug}/" in proxied, proxied
    assert "/media/" not in proxied, "a media request reached daphne"
    assert "/static/" not in proxied, "static files are nginx's too"

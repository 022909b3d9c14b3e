"""The signed media URL rule (videos.media_urls) on its own: what it signs, when it expires, what it refuses.

Both servers applying it to real requests, and the attacks, are in test_nginx.py.
"""

from __future__ import annotations

import secrets
import time

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from hydra_site.deploy.nginx import render_site
from tests.test_settings import _manage
from videos.media_urls import (
    MediaFile,
    MediaUrlRefused,
    check,
    expiry_for,
    issue,
    media_url_secret,
    signed_path,
    url_for_viewer,
)
from videos.models import Video

PATH = "/media/renditions/3f1c2a9e-0000-4000-8000-000000000000.mp4"


def _parts(url: str) -> tuple[str, str, str]:
    path, query = url.split("?")
    token, expires = (pair.split("=", 1)[1] for pair in query.split("&"))
    return path, token, expires


def test_a_url_is_accepted_until_its_expiry_and_refused_after():
    expires = int(time.time()) + 60
    path, token, stamp = _parts(signed_path(PATH, expires))
    check(path, token, stamp)
    check(path, token, stamp, now=expires)  # its last second still counts, as nginx counts it
    with pytest.raises(MediaUrlRefused):
        check(path, token, stamp, now=expires + 1)


@pytest.mark.parametrize(
    ("token", "expires"),
    [
        (None, "1"),
        ("", "1"),
        ("x", None),
        ("ünïcode", "99999999999"),  # not ASCII: refused, not a 500
        ("x", "²³"),  # Unicode digits are not Unix seconds
        ("x", "-5"),
    ],
)
def test_malformed_tokens_and_expiries_are_refused(token, expires):
    with pytest.raises(MediaUrlRefused):
        check(PATH, token, expires)


def test_a_token_signed_with_another_secret_is_refused(settings):
    path, token, expires = _parts(signed_path(PATH, int(time.time()) + 60))
    settings.HYDRA_MEDIA_URL_SECRET = secrets.token_urlsafe(32)
    with pytest.raises(MediaUrlRefused):
        check(path, token, expires)


def test_the_secret_is_derived_from_the_secret_key_but_is_not_it(settings):
    assert media_url_secret() != settings.SECRET_KEY and len(media_url_secret()) >= 32
    settings.HYDRA_MEDIA_URL_SECRET = "x" * 40
    assert media_url_secret() == "x" * 40


def test_urls_last_the_lifetime_plus_the_video_and_pages_within_a_step_share_them(settings):
    settings.HYDRA_MEDIA_URL_SECONDS = 900
    video = Video(rendition_duration_ms=120_000)
    step = 900 // 4
    start = 1_800_000_000 // step * step
    expires = expiry_for(video, start)
    assert expires - start == 900 + 120
    assert expiry_for(video, start + step - 0.5) == expires  # the same URL for a quarter lifetime...
    assert expiry_for(video, start + step) == expires + step  # ...and valid for three quarters of one at least
    assert expires - (start + step - 0.5) > 900 * 3 / 4 + 120


def test_the_url_path_is_the_files_name_under_media_root(ready_video, owner):
    """nginx's alias maps /media/<name> to MEDIA_ROOT/<name>: the two must be the same name."""
    video = ready_video(owner)
    assert issue(video, MediaFile.RENDITION).split("?")[0] == f"/media/{video.rendition.name}"
    assert issue(video, MediaFile.POSTER).split("?")[0] == f"/media/{video.poster.name}"


def test_django_refuses_media_when_nginx_serves_it(ready_video, owner, settings, caplog):
    """A misrouted nginx must show, not quietly send the bytes through Python."""
    video = ready_video(owner)
    settings.HYDRA_MEDIA_SERVER = "nginx"
    response = Client().get(issue(video, MediaFile.RENDITION), headers={"range": "bytes=0-9"})
    assert response.status_code == 404
    assert "reached Django although HYDRA_MEDIA_SERVER=nginx" in caplog.text


def test_pages_issue_no_url_for_a_file_the_video_lacks(db, owner):
    video = Video.objects.create(owner=owner, title="Raw", status=Video.Status.PROCESSING)
    assert url_for_viewer(owner, video, MediaFile.RENDITION) is None
    assert url_for_viewer(AnonymousUser(), video, MediaFile.POSTER) is None


def test_the_rendered_site_carries_the_rule_and_serves_renditions_and_posters_only(settings):
    site = render_site(listen="127.0.0.1:8080", upstream="127.0.0.1:8000")
    assert f'secure_link_md5 "$secure_link_expires$uri {media_url_secret()}";' in site
    assert r'location ~ "^/media/(renditions/[0-9a-f-]{36}\.mp4|posters/[0-9a-f-]{36}\.jpg)$"' in site
    assert f'alias "{settings.MEDIA_ROOT.resolve()}/$1";' in site
    assert "{{" not in site and "{%" not in site


def test_production_serves_media_with_nginx_and_checks_the_secret_setting():
    production = {
        "HYDRA_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
        "DJANGO_ALLOWED_HOSTS": "hydra.example",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/hydra",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    result = _manage("diffsettings", env=production)
    assert result.returncode == 0, result.stderr
    assert "HYDRA_MEDIA_SERVER = 'nginx'" in result.stdout
    result = _manage("check", env={**production, "HYDRA_MEDIA_URL_SECRET": 'short"; return 200'})
    assert result.returncode != 0 and "HYDRA_MEDIA_URL_SECRET must be" in result.stderr
    site = _manage("nginx_site", "--listen", "80", env=production)
    assert site.returncode == 0 and "secure_link $arg_token,$arg_expires;" in site.stdout, site.stderr

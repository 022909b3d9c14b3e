"""The web pages a person uses: accounts, upload form, My videos, deleting, the demo data."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse

from tests.videos.conftest import files_under
from videos import view_counting
from videos.models import Video


def test_sign_up_logs_in_and_leads_to_upload(client, db):
    response = client.post(
        reverse("signup"), {"username": "newbie", "password1": "a-good-long-pass-7", "password2": "a-good-long-pass-7"}
    )
    assert response.status_code == 302 and response["Location"] == reverse("videos:upload")
    assert client.get(reverse("videos:mine")).status_code == 200
    assert User.objects.filter(username="newbie").exists()


def test_sign_up_explains_a_bad_password(client, db):
    response = client.post(reverse("signup"), {"username": "x", "password1": "123", "password2": "123"})
    assert response.status_code == 400
    assert "too short" in response.content.decode()


def test_sign_up_with_an_empty_post_says_what_is_missing(client, db):
    response = client.post(reverse("signup"))
    assert response.status_code == 400 and "This field is required." in response.content.decode()


def test_log_in_and_out(client, owner):
    response = client.post(reverse("login"), {"username": "uploader", "password": "pw-uploader-1"})
    assert response.status_code == 302 and response["Location"] == reverse("videos:mine")
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("videos:mine")).status_code == 302


def test_wrong_password_is_explained(client, owner):
    response = client.post(reverse("login"), {"username": "uploader", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_upload_and_my_videos_need_an_account(client, db):
    for name in ("videos:upload", "videos:mine"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_upload_page_states_the_limits(client_for, owner, settings):
    settings.HYDRA_MAX_UPLOAD_BYTES = 512 * 1024**2
    settings.HYDRA_MAX_DURATION_SECONDS = 2 * 3600
    page = client_for(owner).get(reverse("videos:upload")).content.decode()
    assert "up to 512 MiB and 2 hours long" in page and 'id="upload-progress"' in page and "js/upload.js" in page


def test_a_page_upload_without_javascript_redirects_to_my_videos(client_for, owner, media_root, make_video):
    with make_video(seconds=1, fps=10).open("rb") as handle:
        response = client_for(owner).post(reverse("videos:upload"), {"title": "Plain form", "file": handle})
    assert response.status_code == 302 and response["Location"] == reverse("videos:mine")


def test_my_videos_shows_each_state_in_words(client_for, owner, stranger, ready_video):
    ready_video(owner, title="Out there")
    ready_video(owner, title="Waiting", visibility=Video.Visibility.HELD)
    Video.objects.create(owner=owner, title="Converting", status=Video.Status.PROCESSING)
    Video.objects.create(owner=owner, title="Broken", status=Video.Status.FAILED, failure_reason="It broke.")
    Video.objects.create(owner=stranger, title="Someone else's")
    page = client_for(owner).get(reverse("videos:mine")).content.decode()
    for words in ("Published", "Held for review", "Processing", "Failed", "It broke.", "Converting"):
        assert words in page
    assert "Someone else" not in page
    assert 'http-equiv="refresh"' in page  # keeps itself up to date while something is processing


def test_my_videos_empty_state_is_honest(client_for, owner):
    page = client_for(owner).get(reverse("videos:mine")).content.decode()
    assert "You have not uploaded anything yet" in page


def test_home_empty_state(client, db):
    assert "No videos yet" in client.get(reverse("videos:home")).content.decode()


def test_owner_deletes_from_the_page(client_for, owner, stranger, ready_video, media_root,
                                     django_capture_on_commit_callbacks):  # fmt: skip
    video = ready_video(owner)
    assert client_for(stranger).post(reverse("videos:delete", args=[video.slug])).status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).post(reverse("videos:delete", args=[video.slug]))
    assert response.status_code == 302
    assert not Video.objects.exists() and files_under(media_root) == []


def test_player_counts_each_viewer_once_a_day(client, client_for, owner, stranger, ready_video):
    video = ready_video(owner)
    page_url = reverse("videos:player", args=[video.slug])
    assert "1 view" in client.get(page_url).content.decode()
    client.get(page_url)  # a reload, or the redirect back after a report
    assert "2 views" in client_for(stranger).get(page_url).content.decode()
    client_for(stranger).get(page_url)
    video.refresh_from_db()
    assert video.view_count == 2


def test_player_does_not_count_the_uploader_or_head_requests(client, client_for, owner, ready_video):
    video = ready_video(owner)
    page_url = reverse("videos:player", args=[video.slug])
    assert "0 views" in client_for(owner).get(page_url).content.decode()
    for _ in range(3):  # a script probing the page, from one address or several
        assert client.head(page_url, REMOTE_ADDR=f"203.0.113.{_}").status_code == 200
    video.refresh_from_db()
    assert video.view_count == 0


def test_a_viewer_counts_again_the_next_day(owner, ready_video):
    video = ready_video(owner)
    viewer = view_counting.viewer_key(user_id=None, ip_address="198.51.100.7")
    counted = [
        view_counting.count_view(video, viewer=viewer, is_owner=False, day=day)
        for day in (date(2026, 3, 1), date(2026, 3, 1), date(2026, 3, 2))
    ]
    video.refresh_from_db()
    assert counted == [True, False, True] and video.view_count == 2


@pytest.mark.slow
def test_seed_demo_creates_the_account_and_ready_samples_once(db, media_root, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo")
    demo = User.objects.get(username="demo")
    assert demo.check_password("hydra-demo-2026")
    samples = Video.objects.filter(owner=demo)
    assert samples.count() == 4
    assert set(samples.values_list("status", flat=True)) == {Video.Status.READY}
    files = files_under(media_root)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo")
    assert Video.objects.filter(owner=demo).count() == 4 and files_under(media_root) == files
    moderator = User.objects.get(username="moderator")
    assert moderator.check_password("hydra-moderator-2026") and moderator.is_staff
    assert moderator.has_perm("moderation.view_case") and moderator.has_perm("videos.view_hidden_video")
    assert not moderator.has_perm("moderation.reverse_decision")
    second = User.objects.get(username="moderator2")  # decides appeals against the first one's decisions
    assert second.check_password("hydra-moderator2-2026") and second.has_perm("moderation.decide_case")
    senior = User.objects.get(username="senior")
    assert senior.check_password("hydra-senior-2026") and senior.has_perm("moderation.reverse_decision")


def test_home_search_finds_listed_videos_by_every_word(client, owner, stranger, ready_video):
    ready_video(owner, title="Morning light over the bay")
    ready_video(owner, title="Evening light")
    hidden = ready_video(owner, title="Morning light, held")
    Video.objects.filter(pk=hidden.pk).update(visibility=Video.Visibility.HELD)
    page = client.get(reverse("videos:home"), {"q": "morning LIGHT"}).content.decode()
    assert "Morning light over the bay" in page and "Evening light" not in page and "held" not in page
    assert "1 video for “morning LIGHT”" in page
    by_uploader = client.get(reverse("videos:home"), {"q": owner.username}).content.decode()
    assert "Evening light" in by_uploader


def test_home_search_says_when_nothing_matches_and_escapes_the_query(client, owner, ready_video):
    ready_video(owner, title="Morning light")
    page = client.get(reverse("videos:home"), {"q": "<script>alert(1)</script>"}).content.decode()
    assert "Nothing found for" in page and "<script>alert(1)" not in page and "&lt;script&gt;" in page


def test_owner_edits_title_description_and_poster_frame(client_for, owner, ready_video, media_root):
    video = ready_video(owner, title="Draft", seconds=3, pattern="bars")
    poster_before = Path(video.poster.path).read_bytes()
    response = client_for(owner).post(
        reverse("videos:edit", args=[video.slug]),
        {"title": "  Final cut ", "description": "Shot at dawn.", "poster_at": "2.5"},
    )
    assert response.status_code == 302
    video.refresh_from_db()
    assert (video.title, video.description) == ("Final cut", "Shot at dawn.")
    assert Path(video.poster.path).read_bytes() != poster_before  # a frame 2.5 s in, not the 1 s default
    assert not [p for p in Path(video.poster.path).parent.iterdir() if p.name.endswith(".part")]


def test_an_edit_outside_the_video_changes_nothing(client_for, owner, stranger, ready_video):
    video = ready_video(owner, title="Draft", seconds=3)
    poster_before = Path(video.poster.path).read_bytes()
    url = reverse("videos:edit", args=[video.slug])
    assert client_for(stranger).post(url, {"title": "Mine now"}).status_code == 404
    assert client_for(None).get(url).status_code == 302  # to the login page
    response = client_for(owner).post(url, {"title": "Renamed", "poster_at": "99"})
    assert response.status_code == 400 and "between 0 and 3.0 seconds" in response.content.decode()
    response = client_for(owner).post(url, {"title": "   "})
    assert response.status_code == 400
    video.refresh_from_db()
    assert video.title == "Draft" and Path(video.poster.path).read_bytes() == poster_before

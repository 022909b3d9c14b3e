"""The case page shows everything needed to decide, and decisions made on it are enforced."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image

from moderation import services, thumbnails
from moderation.models import Decision

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy_case(make_playable_video, make_verdict, viewer, moderator, reason):
    """A flagged video with two categories scored, a report, and an earlier decided case."""
    video = make_playable_video("Night market")
    earlier = services.report_video(video, viewer, "spam", "link in the title").case
    services.decide_case(earlier, moderator, "approve", reason("no-violation"), note="not spam")
    make_verdict(
        video,
        "violence",
        score=0.3,
        severity=4,
        threshold=0.5,
        scores={ms: 0.3 if ms == 6000 else 0.05 for ms in range(0, 10_000, 1000)},
    )
    verdict = make_verdict(
        video,
        "nudity",
        score=0.92,
        severity=5,
        threshold=0.6,
        scores={ms: (0.92 if 3000 <= ms <= 5000 else 0.1) for ms in range(0, 10_000, 1000)},
        coverage=0.8,
    )
    case = services.open_case_for_verdict(verdict)
    services.report_video(video, viewer, "sexual", "nudity around 0:04")
    return case


def test_case_page_has_everything_to_decide(client, busy_case, moderator):
    client.force_login(moderator)
    response = client.get(reverse("admin:moderation_case_change", args=[busy_case.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert f'src="/media/renditions/{busy_case.video.media_key}.mp4?token=' in page
    # jump buttons for the flagged segment, seeking to the middle of the 3000 ms frame at 25 fps
    assert 'data-seek="3.02"' in page and "0:03\u20130:06" in page
    # one timeline per scored category, threshold drawn
    assert page.count('class="mq-tl__thr"') == 2 and 'y1="22.4"' in page  # 56 - 0.6 * 56
    # top frames as thumbnails with their times
    assert reverse("admin:moderation_case_frame", args=[busy_case.pk, 3000]) in page
    # verdicts with model version and coverage
    assert "mobilenetv2-nsfwjs" in page and "80%" in page and "nudity v1" in page
    # the reports with texts (this case's and the video's others), the history
    assert "nudity around 0:04" in page
    assert "link in the title" in page and "not spam" in page
    assert "Approve" in page and "Remove" in page and "Escalate" in page


def test_frame_thumbnail_is_cut_from_the_rendition_and_cached(client, busy_case, moderator, staff, media_root):
    url = reverse("admin:moderation_case_frame", args=[busy_case.pk, 4000])
    client.force_login(staff)
    assert client.get(url).status_code == 403
    client.force_login(moderator)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    image = Image.open(io.BytesIO(b"".join(response.streaming_content)))
    assert image.size == (320, 180)
    cached = thumbnails.thumbnail_path(busy_case.video, 4000)
    assert cached.is_file() and str(cached).startswith(str(media_root))
    assert client.get(reverse("admin:moderation_case_frame", args=[busy_case.pk, 999_999])).status_code == 404


def test_thumbnail_shows_the_sampled_frame(busy_case):
    """Different sample times give different stills (the bars pattern moves every second)."""
    first = Image.open(thumbnails.frame_thumbnail(busy_case.video, 1000)).tobytes()
    later = Image.open(thumbnails.frame_thumbnail(busy_case.video, 6000)).tobytes()
    assert first != later


def test_remove_from_the_case_page_is_enforced(client, busy_case, moderator, reason):
    client.force_login(moderator)
    work = reverse("admin:moderation_case_work", args=[busy_case.pk])
    client.post(work, {"op": "claim"})
    response = client.post(
        work, {"op": "decide", "action": "remove", "policy_reason": reason("sexual-content").pk, "note": "0:03"}
    )
    assert response.status_code == 302 and response["Location"] == reverse("admin:moderation_case_changelist")
    video = busy_case.video
    video.refresh_from_db()
    assert video.visibility == "removed" and "Sexual content" in video.visibility_reason
    assert Decision.objects.filter(case=busy_case, action="remove", moderator=moderator).exists()
    assert all(r.status == "handled" for r in video.reports.all())


def test_case_page_refuses_an_incomplete_decision(client, busy_case, moderator):
    client.force_login(moderator)
    work = reverse("admin:moderation_case_work", args=[busy_case.pk])
    response = client.post(work, {"op": "decide", "action": "remove"}, follow=True)
    assert "Choose the policy reason" in response.content.decode()
    assert client.get(work).status_code == 405
    busy_case.video.refresh_from_db()
    assert busy_case.video.visibility == "published"


def test_case_page_says_plainly_which_categories_are_not_analysed(client, busy_case, moderator):
    from inference.models import Head

    Head.objects.create(category="weapons", label="Weapons", kind=Head.Kind.FRAME, threshold=0.5, severity=3)
    client.force_login(moderator)
    page = client.get(reverse("admin:moderation_case_change", args=[busy_case.pk])).content.decode()
    assert "Weapons detection is off" in page
    assert "Nudity detection is off" not in page


def test_deleting_a_video_removes_its_frame_stills(busy_case, django_capture_on_commit_callbacks):
    video = busy_case.video
    thumbnails.frame_thumbnail(video, 4000)
    folder = thumbnails.thumbnail_dir(video.storage_key)
    assert folder.is_dir()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        video.delete()
    assert folder.is_dir()  # nothing is removed before the deletion commits
    for callback in callbacks:
        callback()
    assert not folder.exists()


def test_case_page_times_follow_the_rendition(client, make_playable_video, make_verdict, moderator):
    """A 120 fps upload plays at 60 fps and a little shorter: seeks and the timeline use what is played."""
    video = make_playable_video("Fast")
    video.fps, video.duration_ms = 120.0, 10_000  # the original's
    video.rendition_fps, video.rendition_duration_ms = 60.0, 8_000
    video.save()
    case = services.open_case_for_verdict(
        make_verdict(video, "nudity", score=0.9, scores={ms: 0.9 if ms == 4000 else 0.1 for ms in range(0, 8000, 1000)})
    )
    client.force_login(moderator)
    page = client.get(reverse("admin:moderation_case_change", args=[case.pk])).content.decode()
    assert 'data-seek="4.008"' in page  # middle of the 4000 ms frame at 60 fps (at 120 fps it would be 4.004)
    assert 'data-duration-ms="8000"' in page and "<span>0:08</span>" in page


def test_frame_stills_exist_only_for_sample_times(client, busy_case, moderator):
    client.force_login(moderator)
    assert client.get(reverse("admin:moderation_case_frame", args=[busy_case.pk, 4500])).status_code == 404
    assert not thumbnails.thumbnail_path(busy_case.video, 4500).exists()


def test_frame_still_is_the_frame_the_analysis_decoded(busy_case):
    """Same frame and colours as the CNN's input (decode_frames_at), only scaled down for the page."""
    from inference.ml.frames import decode_frames_at

    still = np.asarray(Image.open(thumbnails.frame_thumbnail(busy_case.video, 3000)), dtype=np.int16)
    analysed = decode_frames_at(busy_case.video.rendition.path, [3000])[0].astype(np.int16)
    assert still.shape == analysed.shape  # 320x180 already fits the thumbnail size
    assert np.abs(still - analysed).mean() < 3  # JPEG noise only

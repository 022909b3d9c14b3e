"""The audit log is append-only: no code path, admin page or SQL statement changes or deletes it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.urls import reverse

from moderation import services
from moderation.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(video, make_verdict) -> AuditEvent:
    services.open_case_for_verdict(make_verdict(video))
    return AuditEvent.objects.get()


def test_model_refuses_update_and_delete(event):
    event.reason = "rewritten"
    with pytest.raises(ValidationError, match="append-only"):
        event.save()
    with pytest.raises(ValidationError, match="append-only"):
        event.delete()
    with pytest.raises(ValidationError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(ValidationError, match="append-only"):
        AuditEvent.objects.all().delete()
    event.refresh_from_db()
    assert event.reason.startswith("Nudity: score 0.90")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger exists on PostgreSQL only")
def test_database_refuses_update_and_delete(event):
    from django.db import DatabaseError

    for sql in ("UPDATE moderation_auditevent SET reason = 'x'", "DELETE FROM moderation_auditevent"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    assert AuditEvent.objects.get(pk=event.pk).reason.startswith("Nudity")


def test_log_outlives_the_video(event, video):
    video.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_admin_shows_the_log_and_edits_nothing_even_for_superusers(client, event, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw")
    client.force_login(admin)
    listing = client.get(reverse("admin:moderation_auditevent_changelist"))
    assert listing.status_code == 200 and "case_opened" in listing.content.decode()
    assert client.get(reverse("admin:moderation_auditevent_add")).status_code == 403
    detail = client.get(reverse("admin:moderation_auditevent_change", args=[event.pk]))
    assert detail.status_code == 200 and 'type="submit"' not in detail.content.decode().split('id="content-main"')[1]
    assert (
        client.post(reverse("admin:moderation_auditevent_change", args=[event.pk]), {"reason": "x"}).status_code == 403
    )
    assert (
        client.post(reverse("admin:moderation_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    )
    response = client.post(
        reverse("admin:moderation_auditevent_changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_every_step_of_a_case_is_logged(video, make_verdict, moderator, moderator2, uploader, senior, reason):
    case = services.open_case_for_verdict(make_verdict(video))
    services.claim_case(case, moderator)
    removal = services.decide_case(case, moderator, "remove", reason("sexual-content"))
    appeal = services.appeal_decision(removal, uploader, "It is art.")
    services.decide_case(appeal.case, moderator2, "remove", reason("sexual-content"))
    services.reverse_decision(removal, senior, reason("no-violation"))
    log = list(AuditEvent.objects.order_by("id").values_list("actor__username", "action", "from_state", "to_state"))
    assert log == [
        (None, "case_opened", "", "open"),
        ("mod", "case_status", "open", "claimed"),
        ("mod", "video_visibility", "published", "removed"),
        ("mod", "case_status", "claimed", "decided"),
        ("uploader", "case_opened", "", "open"),
        ("mod2", "case_status", "open", "decided"),
        ("mod2", "appeal_resolved", "open", "upheld"),
        ("senior", "video_visibility", "removed", "published"),
        ("senior", "decision_reversed", "remove", "approve"),
    ]

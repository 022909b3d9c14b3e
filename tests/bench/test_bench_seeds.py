"""The Hydra path's seeds put the trust layer in the state a cost run claims to price: returning viewers of a
watched video (records past probation, an established audience), so the server only spot-checks at the floor."""

from __future__ import annotations

import pytest
from django.utils import timezone

from bench import hydra_path
from inference.models import ClientSession
from inference.trust.contributors import ContributorRecords
from inference.trust.verification import audience_is_small
from tests.inference.streaming_factories import make_model, make_ready_video


@pytest.mark.django_db
def test_returning_devices_and_an_established_audience_leave_only_the_floor(settings, monkeypatch) -> None:
    monkeypatch.setattr(hydra_path, "_close_db", lambda: None)  # the bench hands its connection back; a test keeps it
    model_version = make_model()
    video = make_ready_video("watched")
    hydra_path.seed_returning_devices("seed", 2 + settings.HYDRA_TRUST_MIN_AUDIENCE, network_octet=42)
    hydra_path.seed_established_audience([video.slug], "seed", network_octet=42, first_index=2)

    viewers = list(ClientSession.objects.filter(video=video, model_version=model_version))
    records = ContributorRecords(viewers, video.pk, per_day=settings.HYDRA_TRUST_RECORD_PER_DAY, now=timezone.now())
    assert len(viewers) == settings.HYDRA_TRUST_MIN_AUDIENCE
    # the record is capped by its age: a seed that is not back-dated would be worth nothing
    assert all(records.consecutive_valid(viewer) == hydra_path.RETURNING_RECORD for viewer in viewers)
    assert not audience_is_small(video, viewers, records)
    assert audience_is_small(video, viewers[:-1], records)  # one viewer fewer is a small audience again

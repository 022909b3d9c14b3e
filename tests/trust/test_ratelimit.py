"""Token buckets per IP and account, on the configured cache (Redis under make test)."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import caches

from hydra_site import ratelimit


@pytest.fixture
def limits(settings):
    settings.HYDRA_RATE_LIMITS = {**settings.HYDRA_RATE_LIMITS, "ws_connect_ip": (3, 60), "ws_connect_account": (2, 60)}
    return settings.HYDRA_RATE_LIMITS


def test_bucket_allows_its_burst_then_refuses_with_a_retry_time(limits):
    key = f"203.0.113.{uuid.uuid4().int % 250}-{uuid.uuid4()}"
    for _ in range(3):
        ratelimit.check("ws_connect_ip", key)
    with pytest.raises(ratelimit.RateLimited) as caught:
        ratelimit.check("ws_connect_ip", key)
    assert 0 < caught.value.retry_after <= 20.0 + 1e-6
    assert "at most 3 per 60 s" in str(caught.value)
    # Another address has its own bucket.
    ratelimit.check("ws_connect_ip", f"other-{uuid.uuid4()}")


def test_bucket_refills_at_its_rate(limits, monkeypatch):
    key = str(uuid.uuid4())
    clock = [1_000_000.0]
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock[0])
    for _ in range(3):
        ratelimit.check("ws_connect_ip", key)
    with pytest.raises(ratelimit.RateLimited):
        ratelimit.check("ws_connect_ip", key)
    clock[0] += 20.0  # one token's worth (60 s / 3)
    ratelimit.check("ws_connect_ip", key)
    with pytest.raises(ratelimit.RateLimited):
        ratelimit.check("ws_connect_ip", key)


def test_client_check_applies_ip_and_account_limits(limits):
    user_id = uuid.uuid4().int % 10**9
    ratelimit.check_client("ws_connect", ip=f"ip-{uuid.uuid4()}", user_id=user_id)
    ratelimit.check_client("ws_connect", ip=f"ip-{uuid.uuid4()}", user_id=user_id)
    with pytest.raises(ratelimit.RateLimited) as caught:
        ratelimit.check_client("ws_connect", ip=f"ip-{uuid.uuid4()}", user_id=user_id)
    assert caught.value.limit.name == "ws_connect_account"
    ratelimit.check_client("ws_connect", ip=None, user_id=None)  # nothing known: nothing to limit


def test_configured_backend_is_shared_redis_when_redis_url_is_set(settings):
    from django.core.cache.backends.redis import RedisCache

    if settings.REDIS_URL:
        assert isinstance(caches["default"], RedisCache)


def test_nonsense_limit_is_refused(settings):
    settings.HYDRA_RATE_LIMITS = {**settings.HYDRA_RATE_LIMITS, "ws_connect_ip": (0, 60)}
    with pytest.raises(ValueError):
        ratelimit.check("ws_connect_ip", "x")


def test_reset_forgets_every_bucket(limits):
    key = str(uuid.uuid4())
    for _ in range(3):
        ratelimit.check("ws_connect_ip", key)
    ratelimit.reset_all()
    ratelimit.check("ws_connect_ip", key)


@pytest.mark.django_db
def test_reports_have_one_rule_counted_in_the_shared_buckets(settings):
    from django.contrib.auth import get_user_model

    from moderation import services as moderation
    from moderation.models import ReportReason
    from videos.models import Video

    settings.HYDRA_REPORTS_PER_HOUR = 2
    users = get_user_model().objects
    viewer, owner = users.create_user("viewer"), users.create_user("owner")
    videos = [Video.objects.create(owner=owner, title=f"v{i}", status=Video.Status.READY) for i in range(3)]
    reason = ReportReason.values[0]
    moderation.report_video(videos[0], viewer, reason, ip_address="198.51.100.4")
    moderation.report_video(videos[1], viewer, reason, ip_address="198.51.100.5")
    with pytest.raises(moderation.RateLimited, match="at most 2 reports an hour"):
        moderation.report_video(videos[2], viewer, reason, ip_address="198.51.100.6")
    # The refusal counted nothing; the account's bucket is what refuses, whatever the address.
    assert ratelimit.take(ratelimit.Limit("report", 2, 3600), f"account:{viewer.pk}") > 0

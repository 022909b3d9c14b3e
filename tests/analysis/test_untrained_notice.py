"""Violence ships untrained: the site says so plainly and never shows a score for it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.template import Context, Template

from inference import services
from inference.ml.temporal import TemporalConfig, build_temporal_model, save_temporal_head
from inference.models import Head

NOTICE = Template("{% load inference_heads %}{% untrained_heads_notice %}")


def test_the_notice_names_untrained_categories_until_they_are_trained(default_heads, model_root, model_version):
    html = NOTICE.render(Context())
    assert "Violence detection is off" in html and "no score until an operator trains it" in html
    assert "Nudity" not in html

    config = TemporalConfig(window=2, projection_units=4, lstm_units=2)
    save_temporal_head(build_temporal_model(2560, config), config, model_root / "heads" / "violence" / "v1")
    services.register_head_version(
        Head.objects.get(category="violence"), model_version, "heads/violence/v1", {"runner": "keras_lstm"}
    )
    assert NOTICE.render(Context()).strip() == ""


def test_the_admin_lists_heads_with_their_status(default_heads, client):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "x" * 12)
    client.force_login(admin)
    page = client.get("/admin/inference/head/").content.decode()
    assert "Untrained: produces no score" in page and "v1 active" in page
    nudity = Head.objects.get(category="nudity")
    detail = client.get(f"/admin/inference/head/{nudity.pk}/change/").content.decode()
    assert "shipped weights" in detail

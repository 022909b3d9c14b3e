"""Violence ships untrained: the site says so plainly and never shows a score for it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.template import Context, Template

from inference import selectors
from inference.ml.temporal import TemporalConfig, build_temporal_model, save_temporal_head
from inference.models import Head, ModelVersion
from inference.services import registry

NOTICE = Template("{% load inference_heads %}{% untrained_heads_notice %}")


def test_the_notice_names_untrained_categories_until_they_are_trained(default_heads, model_root, model_version):
    html = NOTICE.render(Context())
    assert "Violence detection is off" in html and "no score until an operator trains it" in html
    assert "Nudity" not in html

    config = TemporalConfig(window=2, projection_units=4, lstm_units=2)
    save_temporal_head(build_temporal_model(2560, config), config, model_root / "heads" / "violence" / "v1")
    registry.register_head_version(
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
    assert "no training report (weights from their package)" in detail


def test_the_admin_refuses_thresholds_outside_zero_to_one(default_heads, client):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "x" * 12)
    client.force_login(admin)
    nudity = Head.objects.get(category="nudity")
    form = {"label": "Nudity", "threshold": "1.5", "severity": "4", "enabled": "on", "description": ""}
    form.update({"versions-TOTAL_FORMS": "1", "versions-INITIAL_FORMS": "1", "versions-MIN_NUM_FORMS": "0"})
    form.update(
        {
            "versions-MAX_NUM_FORMS": "1000",
            "versions-0-id": str(nudity.versions.get().pk),
            "versions-0-head": str(nudity.pk),
        }
    )
    response = client.post(f"/admin/inference/head/{nudity.pk}/change/", form)
    assert "A threshold is a score between 0 and 1." in response.content.decode()
    assert Head.objects.get(pk=nudity.pk).threshold == 0.7
    form["threshold"] = "0.8"
    assert client.post(f"/admin/inference/head/{nudity.pk}/change/", form).status_code == 302
    assert Head.objects.get(pk=nudity.pk).threshold == 0.8


def test_heads_trained_on_an_earlier_cnn_count_as_untrained_after_it_changes(default_heads, model_version):
    assert [h.category for h in selectors.untrained_heads()] == ["violence"]
    ModelVersion.objects.filter(pk=model_version.pk).update(is_active=False)
    ModelVersion.objects.create(
        name="next cnn",
        content_hash="f" * 64,
        feature_size=1280,
        preprocessing={},
        quantisation={},
        artefact_dir="next",
        is_active=True,
    )
    assert [h.category for h in selectors.untrained_heads()] == ["nudity", "violence"]
    assert "Nudity detection is off" in NOTICE.render(Context())

"""The violence head Hydra ships: trained by one command on real clips, registered by build_models, and used by
the analysis path. The clips are the fight-surveillance set of Aktı, Tataroğlu and Ekenel (IPTA 2019), which the
project keeps beside the repository (``../shared/datasets/fight-surveillance``)."""

from __future__ import annotations

import functools
import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files import File
from django.core.management import call_command

from inference import heads, selectors
from inference.ml import cnn, frames
from inference.models import FrameFeature, FrameScore, HeadVersion, Recomputation, Verdict
from inference.services import pooled_heads, settlement
from inference.trust import paintings
from inference.trust.verification import window_near_threshold
from tests.trust.test_services import establish, record, session_for
from videos.media import probe
from videos.models import Video

DATASET = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "fight-surveillance"
# A fixed subset for training end to end: 5 clips per label (5-fold cross-validation needs 5).
TRAINING_SUBSET = {
    "fight": ["fi001.mp4", "fi002.mp4", "fi003.mp4", "fi004.mp4", "fi006.mp4"],
    "noFight": ["nofi001.mp4", "nofi002.mp4", "nofi003.mp4", "nofi004.mp4", "nofi006.mp4"],
}
# The shipped weights on a fixed set of clips (every 25th of each label; fi001 and fi126 are left out because
# their scores lie within 0.003 of the threshold, where a one-step change of one uint8 feature could flip them),
# analysed like a video nobody watched: server-side features at the site's sample times. These clips were part
# of the shipped head's training data, so this pins its behaviour (deterministic), it does not measure it;
# docs/models.md gives the cross-validated figures. Expected: (violence flagged, nudity flagged by the screen, nudity
# flagged once nsfwjs's InceptionV3 has confirmed the screen's frames). The screen's nudity flags on these clips are
# its known false flags on harmless footage; the confirmer gives them at most one frame at 0.7 (fi101: 0.80, 0.57;
# nofi076: 0.01, 0.00), short of the two a segment needs, so none reaches the queue (docs/models.md, nudity cascade).
SHIPPED_CHECK = {
    "fight/fi026.mp4": (True, False, False),
    "fight/fi051.mp4": (True, False, False),
    "fight/fi076.mp4": (True, True, False),
    "fight/fi101.mp4": (True, True, False),
    "noFight/nofi026.mp4": (False, False, False),
    "noFight/nofi051.mp4": (False, False, False),
    "noFight/nofi076.mp4": (False, True, False),
    "noFight/nofi101.mp4": (False, False, False),
}
SHIPPED_EXPECTED_VIOLENCE_ACCURACY = 1.0

pytestmark = pytest.mark.skipif(not DATASET.is_dir(), reason=f"the fight-surveillance clips are not at {DATASET}")


@pytest.fixture
def subset_folder(tmp_path) -> Path:
    root = tmp_path / "subset"
    for label, names in TRAINING_SUBSET.items():
        (root / label).mkdir(parents=True)
        for name in names:
            assert (DATASET / label / name).is_file(), f"the fixed subset lost {label}/{name}"
            (root / label / name).symlink_to(DATASET / label / name)
    return root


@pytest.fixture
def shipped_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "shipped"
    monkeypatch.setattr(pooled_heads, "SHIPPED_ROOT", root)
    return root


@pytest.mark.slow
def test_train_head_trains_reports_ships_and_build_models_registers_it(
    default_heads, model_root, model_version, subset_folder, shipped_root
):
    out = StringIO()
    call_command("train_head", "violence", from_folder=subset_folder, ship=True, stdout=out)
    version = HeadVersion.objects.get(head__category="violence")
    assert version.is_active and version.config["runner"] == "pooled_linear"
    assert version.config["sample_interval_ms"] == settings.HYDRA_SAMPLE_INTERVAL_MS
    report = version.metrics
    assert report["clips"] == {"total": 10, "positive": 5, "negative": 5}
    assert len(report["folds"]) == 5 and sum(fold["clips"] for fold in report["folds"]) == 10
    assert report["cnn_content_hash"] == model_version.content_hash
    assert 0.0 <= report["balanced_accuracy_mean"] <= 1.0 and report["balanced_accuracy_std"] >= 0.0
    assert sum(row["count"] for row in report["calibration"]["bins"]) == 10
    assert report["operating_point"]["threshold"] == version.head.threshold
    assert "balanced accuracy" in out.getvalue()
    directory = model_root / version.weights_path
    assert (directory / "roc.png").read_bytes()[:4] == b"\x89PNG"

    shipped = shipped_root / "violence" / f"interval-{settings.HYDRA_SAMPLE_INTERVAL_MS}"
    assert sorted(p.name for p in shipped.iterdir()) == sorted(pooled_heads.SHIPPED_FILES)
    assert json.loads((shipped / "manifest.json").read_text())["cnn_content_hash"] == model_version.content_hash

    # The features were cached: a second run decodes nothing new and reproduces the report exactly.
    cache = sorted(pooled_heads.clip_feature_cache().rglob("*.npz"))
    assert len(cache) == 10
    call_command("train_head", "violence", from_folder=subset_folder, no_activate=True, stdout=StringIO())
    assert sorted(pooled_heads.clip_feature_cache().rglob("*.npz")) == cache
    second = HeadVersion.objects.get(head__category="violence", version=2)
    assert second.metrics["out_of_fold_scores"] == report["out_of_fold_scores"]

    # An operator's own version is never replaced by the shipped one.
    assert pooled_heads.ensure_shipped_heads(model_version) == []


def test_shipped_weights_are_refused_for_another_cnn_or_interval(default_heads, model_version, settings, caplog):
    settings.HYDRA_SAMPLE_INTERVAL_MS = 333
    assert pooled_heads.ensure_shipped_heads(model_version) == []
    settings.HYDRA_SAMPLE_INTERVAL_MS = 1000
    model_version.content_hash = "0" * 64
    assert pooled_heads.ensure_shipped_heads(model_version) == []
    assert "trained on another CNN" in caplog.text
    assert not HeadVersion.objects.filter(head__category="violence").exists()


def video_of(path: Path, make_analysed_video) -> Video:
    """A ready video whose rendition is the clip: the server decodes it for its own features and a flag's confirmer."""
    probed = probe(path, max_duration_seconds=settings.HYDRA_MAX_DURATION_SECONDS)
    video = make_analysed_video(seconds=probed.duration_ms / 1000, fps=probed.fps, title=path.name)
    with path.open("rb") as clip:
        video.rendition.save(path.name, File(clip))
    return video


def analysed_like_an_unwatched_video(
    path: Path, make_analysed_video, store_features, model_version, capture_on_commit
) -> tuple:
    """The server's own features at the video's sample times (frames decoded, Keras CNN), stored and analysed; the
    clip is the video's rendition, which a nudity flag's confirmer decodes (inference.services.flag_confirmation)."""
    probed = probe(path, max_duration_seconds=settings.HYDRA_MAX_DURATION_SECONDS)
    video = video_of(path, make_analysed_video)
    times = selectors.expected_sample_times(video)
    model = cnn.cached_feature_extractor(str(selectors.model_artefact_dir(model_version)))
    store_features(video, model_version, times, cnn.compute_features(model, frames.decode_frames_at(path, times)), True)
    with capture_on_commit():  # the flag's confirmation runs as its task would, then the verdicts are read back
        settlement.analyse_and_announce(video, model_version)
    stored = Verdict.objects.filter(video=video).select_related("head_version__head")
    verdicts = {verdict.head_version.head.category: verdict for verdict in stored}
    return verdicts, probed.duration_ms


@pytest.mark.slow
def test_shipped_violence_head_is_on_after_build_models_and_flags_fights_with_segments(
    default_heads, model_version, make_analysed_video, store_features, media_root, django_capture_on_commit_callbacks
):
    registered = pooled_heads.ensure_shipped_heads(model_version)
    assert [hv.head.category for hv in registered] == ["violence"]
    assert pooled_heads.ensure_shipped_heads(model_version) == []  # idempotent
    shipped = registered[0]
    assert shipped.is_active and shipped.config["shipped"] and shipped.metrics["balanced_accuracy_mean"] > 0.5

    flagged = {}
    for name in SHIPPED_CHECK:
        verdicts, duration_ms = analysed_like_an_unwatched_video(
            DATASET / name,
            make_analysed_video,
            store_features,
            model_version,
            functools.partial(django_capture_on_commit_callbacks, execute=True),
        )
        violence = verdicts["violence"]
        nudity = verdicts["nudity"]
        flagged[name] = (violence.flagged, nudity.stages["screen"]["flagged"], nudity.flagged)
        if violence.flagged:
            assert violence.segments and all(0 <= start < end <= duration_ms for start, end, _ in violence.segments)
            assert violence.top_frames[0][1] >= shipped.head.threshold
    assert flagged == SHIPPED_CHECK
    correct = sum(flagged[name][0] == name.startswith("fight/") for name in SHIPPED_CHECK)
    assert correct / len(SHIPPED_CHECK) == SHIPPED_EXPECTED_VIOLENCE_ACCURACY
    assert Verdict.objects.filter(head_version=shipped).count() == len(SHIPPED_CHECK)


# The window guard's cost (docs/trust.md, defence 10). The shipped head is steep: nearly every honest window of real
# clips lies within W x HYDRA_TRUST_MAX_WINDOW_DIFFERENCE logits of the threshold, where a lie inside the tolerance
# could carry it across. Until the heads scored the most severe of agreeing replicas, the server computed every
# such window (9 of 9 windows of these clips: a strict expected failure stood here). Now two independent honest
# viewers carry them: the server computes no sample of a watched video for being borderline.
MOSTLY_INSIDE_THE_BAND = 0.5
HONEST_PAINTINGS = ("chromium-software", "float-matrix")  # two browsers that paint a frame differently


@pytest.mark.slow
def test_honest_windows_of_real_clips_watched_by_two_viewers_are_carried_by_peers(
    default_heads, model_version, make_analysed_video, media_root, django_capture_on_commit_callbacks, settings
):
    settings.HYDRA_TRUST_MIN_AUDIENCE = 0  # the audience rule's cost is the small audience's, not the band's
    settings.HYDRA_TRUST_SPOT_CHECK_FLOOR = 0.0
    version = pooled_heads.ensure_shipped_heads(model_version)[0]
    runner = heads.load_runner(version)
    model = cnn.cached_feature_extractor(str(selectors.model_artefact_dir(model_version)))
    capture = functools.partial(django_capture_on_commit_callbacks, execute=True)
    near, flagged, samples = [], {}, 0
    for index, name in enumerate(SHIPPED_CHECK):
        path = DATASET / name
        video = video_of(path, make_analysed_video)
        times = selectors.expected_sample_times(video)
        viewers = [session_for(video, model_version, p, ip=f"10.40.{2 * index + i}.1") for i, p in enumerate("ab")]
        establish(*viewers)
        for viewer, painting in zip(viewers, HONEST_PAINTINGS, strict=True):
            with capture():
                record(viewer, times, cnn.compute_features(model, paintings.painted_frames(path, times, painting)))
        with capture():
            settlement.analyse_and_announce(video, model_version)
        verdict = Verdict.objects.get(video=video, head_version=version)
        flagged[name] = verdict.flagged
        scores = FrameScore.objects.filter(video=video, head_version=version).values_list("score", flat=True)
        near += [window_near_threshold(runner, score, version.head.threshold) for score in scores]
        samples += len(times)
    borderline = Recomputation.objects.filter(reason=Recomputation.Reason.BORDERLINE).count()
    computed = FrameFeature.objects.filter(session__is_server=True).count()
    print(
        f"\nTRUST-FIGURES peer-carried windows: {sum(near)} of {len(near)} samples in the band, {borderline} "
        f"borderline recomputations, {computed} of {samples} samples computed by the server (flag confirmations)"
    )
    assert sum(near) / len(near) > MOSTLY_INSIDE_THE_BAND  # the head is as steep as before
    assert borderline == 0  # but peers carry it
    assert flagged == {name: expected[0] for name, expected in SHIPPED_CHECK.items()}  # decided as the server would
    assert not FrameFeature.objects.filter(status=FrameFeature.Status.REJECTED).exists()  # honest paintings agree

"""Training the violence head end to end: from a folder of labelled clips and from moderators' decisions."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from inference import selectors
from inference.ml import frames
from inference.ml.training import find_labelled_videos
from inference.models import FrameFeature, Head, HeadVersion, TrainingClip, Verdict
from inference.services import settlement, training
from moderation import services as moderation_services
from moderation.models import PolicyReason
from videos.synthetic import write_video

CLIPS_PER_LABEL = 10
# Small pictures of varied sizes and rates, so that every file differs (calm and bars depend on time only).
SIZES = [(96, 72), (112, 84), (128, 96), (80, 64), (104, 80)]


@pytest.fixture(scope="module")
def fights_folder(tmp_path_factory) -> Path:
    """RWF-2000's layout: Fight/ holds erratic fast motion, NonFight/ calm drifting scenes and slow bars."""
    root = tmp_path_factory.mktemp("rwf")
    for i in range(CLIPS_PER_LABEL):
        width, height = SIZES[i % len(SIZES)]
        fps = (24, 25, 30)[i % 3]
        write_video(
            root / "Fight" / f"fight_{i}.mp4", seconds=3, fps=fps, width=width, height=height, pattern="erratic", seed=i
        )
        calm = "calm" if i % 2 == 0 else "bars"
        write_video(
            root / "NonFight" / f"calm_{i}.mp4",
            seconds=3,
            fps=fps,
            width=width + 8 * (i // 5),
            height=height,
            pattern=calm,
        )
    return root


@pytest.fixture
def trained_setup(default_heads, model_root, settings):
    settings.HYDRA_SAMPLE_INTERVAL_MS = 250
    return Head.objects.get(category="violence")


def train(*args: str, **options) -> str:
    """The LSTM's training (``--model lstm``); the pooled head's has its own tests (test_pooled_head.py)."""
    options.setdefault("model", "lstm")
    out = StringIO()
    call_command("train_head", *args, stdout=out, **options)
    return out.getvalue()


@pytest.mark.slow
def test_training_from_a_folder_registers_a_version_that_beats_chance_caches_features_and_rolls_back(
    trained_setup, fights_folder, model_root, monkeypatch, make_analysed_video, store_features, model_version
):
    violence = trained_setup
    output = train("violence", from_folder=fights_folder, window=4, stride=2, epochs=60, patience=10, batch_size=8)

    first = HeadVersion.objects.get(head=violence)
    assert first.version == 1 and first.is_active
    report = first.metrics
    assert report["sequences"]["test"] >= 4
    assert report["test_clips"]["accuracy"] >= 0.8
    assert report["test_windows"]["accuracy"] >= 0.8 and report["test_windows"]["roc_auc"] >= 0.8
    [[tn, fp], [fn, tp]] = report["test_clips"]["confusion_matrix"]
    assert tn + fp + fn + tp == report["sequences"]["test"]
    directory = model_root / first.weights_path
    assert directory == model_root / "heads" / "violence" / "v1"
    assert json.loads((directory / "report.json").read_text())["test_clips"] == report["test_clips"]
    assert (directory / "roc.png").read_bytes()[:4] == b"\x89PNG"
    assert first.config["runner"] == "keras_lstm" and first.config["window"] == 4
    assert first.config["sample_interval_ms"] == 250
    assert "held-out clips: accuracy" in output and "violence v1 (active)" in output
    assert TrainingClip.objects.count() == 2 * CLIPS_PER_LABEL
    assert all(len(clip.sample_ms) == 12 for clip in TrainingClip.objects.all())
    assert_fight_is_flagged_and_calm_is_not(fights_folder, make_analysed_video, store_features, model_version)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached clip was decoded again")

    monkeypatch.setattr(frames, "decode_frames_at", no_decoding)
    train("violence", from_folder=fights_folder, window=4, stride=2, epochs=60, patience=10, batch_size=8, seed=1)
    second = HeadVersion.objects.get(head=violence, version=2)
    assert second.is_active and not HeadVersion.objects.get(pk=first.pk).is_active
    assert TrainingClip.objects.count() == 2 * CLIPS_PER_LABEL

    out = StringIO()
    call_command("rollback_head", "violence", "1", stdout=out)
    assert "violence v1 is now active" in out.getvalue()
    assert HeadVersion.objects.get(is_active=True, head=violence).version == 1
    assert (model_root / second.weights_path / "model.keras").exists()  # kept for rolling forward again


def assert_fight_is_flagged_and_calm_is_not(folder, make_analysed_video, store_features, model_version) -> None:
    """The trained head, analysing two clips' features stored as if browsers had sent them."""
    verdicts = {}
    for name in ("Fight/fight_0.mp4", "NonFight/calm_0.mp4"):
        times, features = training.training_clip_features(folder / name, model_version)
        video = make_analysed_video(seconds=3, fps=24, title=name)
        assert selectors.expected_sample_times(video) == times
        store_features(video, model_version, times, features)
        verdicts[name] = {v.head_version.head.category: v for v in settlement.analyse_and_announce(video)}["violence"]
    fight, calm = verdicts["Fight/fight_0.mp4"], verdicts["NonFight/calm_0.mp4"]
    assert fight.flagged and fight.segments and fight.score > calm.score
    assert not calm.flagged and calm.segments == []


def test_folder_layout_errors_are_clear(tmp_path):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.mp4").write_bytes(b"x")
    with pytest.raises(ValueError, match="exactly two label folders"):
        find_labelled_videos(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "b.mp4").write_bytes(b"x")
    with pytest.raises(ValueError, match="positive label"):
        find_labelled_videos(tmp_path)
    labelled = find_labelled_videos(tmp_path, positive="other")
    assert sorted((f.path.name, f.label) for f in labelled) == [("a.mp4", 0), ("b.mp4", 1)]
    with pytest.raises(ValueError, match="'Fight' is not one of the label folders"):
        find_labelled_videos(tmp_path, positive="Fight")


def test_rwf2000_train_and_val_folders_are_both_read(tmp_path):
    for part in ("train", "val"):
        for label in ("Fight", "NonFight"):
            (tmp_path / part / label).mkdir(parents=True)
            (tmp_path / part / label / f"{part}.avi").write_bytes(b"x")
    labelled = find_labelled_videos(tmp_path)
    assert sorted((str(f.path.relative_to(tmp_path)), f.label) for f in labelled) == [
        ("train/Fight/train.avi", 1),
        ("train/NonFight/train.avi", 0),
        ("val/Fight/val.avi", 1),
        ("val/NonFight/val.avi", 0),
    ]


def test_training_refuses_frame_heads_unknown_categories_and_too_few_clips(trained_setup, tmp_path):
    with pytest.raises(CommandError, match="no head 'gore'"):
        train("gore", from_folder=tmp_path)
    with pytest.raises(CommandError, match="only temporal heads"):
        train("nudity", from_decisions=True)
    with pytest.raises(CommandError, match="exactly two label folders"):
        train("violence", from_folder=tmp_path)
    assert not HeadVersion.objects.filter(head__category="violence").exists()


def motion_features(label: int, n: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(1, 5, size=1280)
    if label:
        return np.clip(base + rng.normal(0, 1.5, size=(n, 1280)), 0, 6).astype(np.float32)
    return np.clip(base + np.cumsum(rng.normal(0, 0.02, size=(n, 1280)), axis=0), 0, 6).astype(np.float32)


def test_training_from_moderators_decisions_uses_stored_features_without_decoding(
    default_heads, make_analysed_video, store_features, model_version, monkeypatch
):
    """Viewers report videos for violence; moderators remove or approve them; the head learns from those labels."""
    moderator = get_user_model().objects.create_user("mod", password="x" * 12, is_staff=True)
    moderator.groups.add(Group.objects.get(name="Moderators"))
    removal, clearance = (
        PolicyReason.objects.get(code="graphic-violence"),
        PolicyReason.objects.get(code="no-violation"),
    )
    rng = np.random.default_rng(5)
    for i in range(16):
        label = i % 2
        video = make_analysed_video(seconds=10, fps=25, title=f"moderated {i}")
        times = selectors.expected_sample_times(video)
        store_features(video, model_version, times, motion_features(label, len(times), rng))
        reporter = get_user_model().objects.create_user(f"viewer{i}", password="x" * 12)
        report = moderation_services.report_video(video, reporter, "violence")
        action = "remove" if label else "approve"
        moderation_services.decide_case(report.case, moderator, action, removal if label else clearance)
    unlabelled = make_analysed_video(seconds=10, fps=25, title="never decided")
    store_features(unlabelled, model_version, [0, 1000], motion_features(1, 2, rng))
    monkeypatch.setattr(frames, "decode_frames_at", lambda *a, **k: pytest.fail("decisions must not decode"))

    output = train("violence", from_decisions=True, window=4, stride=2, inputs="differences", epochs=30, batch_size=8)

    version = HeadVersion.objects.get(head__category="violence")
    assert "16 labelled clips from moderators' final decisions" in output
    assert version.metrics["source"] == "moderators' final decisions"
    assert version.metrics["test_clips"]["accuracy"] >= 0.8
    assert sorted(version.metrics["held_out_test_keys"])[0].startswith("video:")
    assert FrameFeature.objects.count() == 16 * 10 + 2 and not Verdict.objects.exists()

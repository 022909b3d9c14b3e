"""The head registry and verdicts computed from stored features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from django.db import IntegrityError, transaction

from inference import heads, selectors, signals
from inference.heads import HeadScores, contiguous_runs, per_frame_most_severe, register_runner
from inference.ml import cnn
from inference.ml.nsfw_head import load_nsfw_head
from inference.ml.nsfwjs import CLASS_NAMES
from inference.ml.quantise import dequantise, quantise
from inference.ml.temporal import TemporalConfig, build_temporal_model, save_temporal_head
from inference.models import FrameFeature, FrameScore, Head, HeadVersion, Verdict
from inference.services import registry, settlement
from moderation.models import Case
from videos.synthetic import iter_frames


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """Ten frames of three kinds of picture, one per sample of a 10-second video."""
    bars = list(iter_frames("bars", 4, 1, 160, 120))
    calm = list(iter_frames("calm", 3, 1, 160, 120))
    noise = list(iter_frames("noise", 3, 1, 160, 120, seed=3))
    return np.stack(bars + calm + noise)


@pytest.fixture(scope="module")
def frame_features(frames, feature_extractor) -> np.ndarray:
    return cnn.compute_features(feature_extractor, frames)


class Recorder:
    """Collects what a signal sends."""

    def __init__(self, signal):
        self.calls: list[dict] = []
        self.signal = signal
        signal.connect(self.receive, weak=False)

    def receive(self, sender, signal, **kwargs):
        self.calls.append(kwargs)


@pytest.fixture
def flagged_recorder():
    recorder = Recorder(signals.verdict_flagged)
    yield recorder
    signals.verdict_flagged.disconnect(recorder.receive)


@pytest.fixture
def cleared_recorder():
    recorder = Recorder(signals.video_cleared)
    yield recorder
    signals.video_cleared.disconnect(recorder.receive)


# A category added by a test: the mean feature value, scaled into [0, 1]. Registering it is all it takes.
@register_runner("test_mean_feature")
def load_mean_feature(weights: Path, config: dict):
    scale = json.loads(weights.read_text())["scale"]

    class MeanFeature:
        def score(self, features: np.ndarray, positions: np.ndarray) -> HeadScores:
            return HeadScores(scores=np.clip(features.mean(axis=1) / scale, 0, 1))

        def score_most_severe(self, replicas: list[np.ndarray], positions: np.ndarray) -> HeadScores:
            return per_frame_most_severe(self, replicas, positions)

    return MeanFeature()


@pytest.fixture
def mean_feature_head(model_root, model_version) -> HeadVersion:
    weights = model_root / "heads" / "brightness" / "v1" / "weights.json"
    weights.parent.mkdir(parents=True)
    weights.write_text(json.dumps({"scale": 6.0}))
    head = registry.register_head("brightness", "Bright features", Head.Kind.FRAME, threshold=0.5, severity=2)
    return registry.register_head_version(
        head,
        model_version,
        weights_path=str(weights.relative_to(model_root)),
        config={"runner": "test_mean_feature", "segments": {"edge_margin": 0.0, "max_gap_ms": 0, "min_length_ms": 0}},
    )


def constant_features(values: list[float]) -> np.ndarray:
    return np.repeat(np.asarray(values, dtype=np.float32)[:, None], 1280, axis=1)


def test_default_heads_are_nudity_with_nsfwjs_weights_and_untrained_violence(default_heads, model_root):
    nudity = Head.objects.get(category="nudity")
    violence = Head.objects.get(category="violence")
    assert (nudity.kind, nudity.threshold, nudity.severity) == (Head.Kind.FRAME, 0.7, 4)
    assert violence.kind == Head.Kind.TEMPORAL
    active = nudity.versions.get(is_active=True)
    assert active.version == 1 and active.config["positive_classes"] == ["porn", "hentai"]
    assert (model_root / active.weights_path).is_file()
    assert not violence.versions.exists()
    assert selectors.untrained_heads() == [violence]
    # ensure_default_heads registers the category; its shipped weights come with build_models (test_shipped_violence).
    assert "ships weights" in violence.description and "train_head violence" in violence.description

    registry.ensure_default_heads()
    assert HeadVersion.objects.count() == 1 and Head.objects.count() == 2


def test_nudity_scores_stored_features_with_nsfwjs_dense_head(
    default_heads, make_analysed_video, store_features, model_version, frame_features, model_root
):
    video = make_analysed_video(seconds=10, fps=25)
    times = selectors.expected_sample_times(video)
    assert times == list(range(0, 10000, 1000))
    store_features(video, model_version, times[:8], frame_features[:8])

    [verdict] = settlement.analyse_and_announce(video)

    nudity_version = HeadVersion.objects.get(head__category="nudity")
    expected = load_nsfw_head(model_root / nudity_version.weights_path).predict(
        dequantise(quantise(frame_features[:8]))
    )
    rows = list(FrameScore.objects.filter(video=video, head_version=nudity_version).order_by("sample_ms"))
    assert [row.sample_ms for row in rows] == times[:8]
    for row, probabilities in zip(rows, expected, strict=True):
        assert row.score == pytest.approx(probabilities[3] + probabilities[1], abs=1e-5)
        assert sorted(row.class_scores) == sorted(CLASS_NAMES)
        assert sum(row.class_scores.values()) == pytest.approx(1.0, abs=1e-3)
    assert verdict.head_version == nudity_version and verdict.model_version == model_version
    assert verdict.coverage == pytest.approx(0.8)
    assert verdict.threshold == 0.7
    assert verdict.score == pytest.approx(max(row.score for row in rows))
    assert verdict.top_frames[0][1] == pytest.approx(verdict.score)
    # The fixture's synthetic frames (bars, calm, noise) are nothing like nudity: measured 0.067, not flagged.
    assert verdict.score < 0.2 and verdict.flagged is False and verdict.computed_at is not None
    # Violence is registered but untrained: it produces no score and no verdict.
    assert not Verdict.objects.filter(head_version__head__category="violence").exists()


@pytest.mark.slow
def test_nudity_head_on_stored_features_matches_nsfwjs_itself(
    default_heads, make_analysed_video, store_features, model_version, frames, frame_features, run_tfjs, settings
):
    """nsfwjs's own network, run by TF.js, against what the server reports after storage (uint8) and the head."""
    chosen = [0, 3, 5, 8]  # bars, bars, calm, noise: TF.js's cpu backend takes about 2 s a frame
    nsfwjs = run_tfjs(frames[chosen], ["dense_3"], nsfwjs_dir=settings.HYDRA_NSFWJS_DIR)["dense_3"]
    video = make_analysed_video(seconds=4, fps=25)
    store_features(video, model_version, selectors.expected_sample_times(video), frame_features[chosen])
    settlement.analyse_and_announce(video)
    stored = FrameScore.objects.filter(video=video, head_version__head__category="nudity").order_by("sample_ms")
    server = np.asarray([[row.class_scores[name] for name in CLASS_NAMES] for row in stored])
    assert server.shape == nsfwjs.shape == (4, 5)
    assert np.abs(server - nsfwjs).max() <= 0.01
    assert (server.argmax(axis=1) == nsfwjs.argmax(axis=1)).all()


def test_a_registered_category_is_analysed_without_touching_the_pipeline(
    mean_feature_head, make_analysed_video, store_features, model_version, flagged_recorder, cleared_recorder
):
    video = make_analysed_video(seconds=6, fps=25)
    # Server-computed features: a flag on client features alone waits for the server (docs/trust.md).
    features = constant_features([1, 4, 4.5, 1, 1, 3])
    store_features(video, model_version, [0, 1000, 2000, 3000, 4000, 5000], features, is_server=True)

    [verdict] = settlement.analyse_and_announce(video)

    assert verdict.head_version == mean_feature_head
    assert verdict.flagged and verdict.coverage == 1.0
    assert verdict.segments == [[1000, 3000, pytest.approx(0.75, abs=0.01)], [5000, 6000, pytest.approx(0.5, abs=0.01)]]
    assert [ms for ms, _score in verdict.top_frames[:3]] == [2000, 1000, 5000]
    assert flagged_recorder.calls == [{"verdict": verdict}]
    assert cleared_recorder.calls == []
    # The moderation app listens: the flag is now a case in the review queue.
    case = Case.objects.get(video=video)
    assert (case.source, case.category, case.verdict) == (Case.Source.FLAG, "brightness", verdict)


def test_running_the_analysis_again_gives_the_same_rows(
    mean_feature_head, make_analysed_video, store_features, model_version
):
    video = make_analysed_video(seconds=6, fps=25)
    store_features(video, model_version, [0, 1000, 2000], constant_features([1, 4, 1]))
    first = settlement.analyse_and_announce(video)
    scores_before = list(FrameScore.objects.order_by("sample_ms").values_list("sample_ms", "score"))
    second = settlement.analyse_and_announce(video)
    assert [v.pk for v in first] == [v.pk for v in second]
    assert Verdict.objects.count() == 1 and FrameScore.objects.count() == 3
    assert list(FrameScore.objects.order_by("sample_ms").values_list("sample_ms", "score")) == scores_before
    fields = ("score", "flagged", "segments", "top_frames", "coverage", "threshold")
    assert [getattr(first[0], f) for f in fields] == [getattr(second[0], f) for f in fields]


def test_full_coverage_below_every_threshold_clears_the_video(
    mean_feature_head, make_analysed_video, store_features, model_version, flagged_recorder, cleared_recorder
):
    video = make_analysed_video(seconds=3, fps=25)
    store_features(video, model_version, [0, 1000], constant_features([1, 1]))
    settlement.analyse_and_announce(video)
    assert cleared_recorder.calls == []  # two of three samples: not enough to clear

    store_features(video, model_version, [2000], constant_features([1]))
    verdicts = settlement.analyse_and_announce(video)
    assert cleared_recorder.calls == [{"video": video, "verdicts": verdicts}]
    assert flagged_recorder.calls == []


def test_the_server_vector_wins_and_rejected_or_stray_rows_are_ignored(
    mean_feature_head, make_analysed_video, store_features, model_version
):
    video = make_analysed_video(seconds=3, fps=25)
    store_features(video, model_version, [0, 1000], constant_features([5.5, 5.5]))
    store_features(video, model_version, [1000], constant_features([0.6]), is_server=True)
    store_features(video, model_version, [2000], constant_features([6]), status=FrameFeature.Status.REJECTED)
    store_features(video, model_version, [1500], constant_features([6]))  # not a sample time of this video
    settlement.analyse_and_announce(video)
    scores = dict(FrameScore.objects.values_list("sample_ms", "score"))
    assert scores == {0: pytest.approx(5.5 / 6, abs=0.01), 1000: pytest.approx(0.1, abs=0.01)}
    assert Verdict.objects.get().coverage == pytest.approx(2 / 3)


def test_nothing_stored_means_no_verdict(mean_feature_head, make_analysed_video):
    assert settlement.analyse_and_announce(make_analysed_video()) == []
    assert not Verdict.objects.exists()


def test_a_settlement_pass_analyses_when_coverage_reaches_a_new_step(
    mean_feature_head, make_analysed_video, store_features, model_version, settings
):
    settings.HYDRA_ANALYSIS_COVERAGE_STEPS = [0.25, 0.5, 1.0]
    video = make_analysed_video(seconds=10, fps=25)

    def record(times):
        store_features(video, model_version, times, constant_features([1] * len(times)))
        return len(settlement.settle_video(video, model_version))

    assert record([0, 1000]) == 0
    assert record([2000]) == 1  # 30%: the first step
    assert Verdict.objects.get().coverage == pytest.approx(0.3)
    assert record([3000]) == 0  # 40%: no new step
    assert record([4000]) == 1  # 50%
    assert record([5000, 6000, 7000, 8000]) == 0
    assert record([9000]) == 1
    assert Verdict.objects.get().coverage == 1.0


def test_rolling_back_activates_an_earlier_version(mean_feature_head, model_version):
    head = mean_feature_head.head
    second = registry.register_head_version(
        head, model_version, mean_feature_head.weights_path, {"runner": "test_mean_feature"}
    )
    assert second.version == 2 and second.is_active
    assert not HeadVersion.objects.get(pk=mean_feature_head.pk).is_active
    registry.activate_head_version("brightness", 1)
    assert HeadVersion.objects.get(is_active=True, head=head).version == 1
    with pytest.raises(ValueError, match="has no version 7; versions: \\[1, 2\\]"):
        registry.activate_head_version("brightness", 7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "audio"}, "kind must be one of"),
        ({"threshold": 1.2}, "threshold must be within"),
        ({"severity": 0}, "severity must be 1 to 5"),
    ],
)
def test_bad_head_registrations_are_refused(db, kwargs, message):
    arguments = {"category": "spam", "label": "Spam", "kind": "frame", "threshold": 0.5, "severity": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        registry.register_head(**arguments)
    assert not Head.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"), [("threshold", 1.5), ("threshold", -0.1), ("severity", 0), ("severity", 9)]
)
def test_the_database_refuses_limits_out_of_range_whoever_writes_them(db, field, value):
    """The attack: bypass the service and the admin form (a bulk update, a shell) to store a threshold
    no score reaches (flagging turned off) or a severity outside the queue's scale."""
    head = Head.objects.create(category="spam", label="Spam", kind="frame", threshold=0.5, severity=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        Head.objects.filter(pk=head.pk).update(**{field: value})
    assert Head.objects.filter(pk=head.pk, threshold=0.5, severity=2).exists()


def test_unknown_runner_is_refused(mean_feature_head, model_version):
    with pytest.raises(ValueError, match="runner"):
        registry.register_head_version(mean_feature_head.head, model_version, "x", {"runner": "telepathy"})
    assert HeadVersion.objects.count() == 1


def test_temporal_windows_never_span_missing_samples():
    assert contiguous_runs(np.array([0, 1, 2, 5, 6, 9])) == [(0, 3), (3, 5), (5, 6)]
    assert contiguous_runs(np.array([], dtype=int)) == []


def test_a_trained_temporal_head_scores_every_stored_sample(
    default_heads, model_root, make_analysed_video, store_features, model_version, frame_features
):
    config = TemporalConfig(window=3, stride=1, projection_units=8, lstm_units=4)
    directory = model_root / "heads" / "violence" / "v1"
    save_temporal_head(build_temporal_model(2560, config), config, directory)
    violence = Head.objects.get(category="violence")
    registry.register_head_version(
        violence, model_version, str(directory.relative_to(model_root)), {"runner": "keras_lstm", **config.to_dict()}
    )
    video = make_analysed_video(seconds=10, fps=25)
    times = selectors.expected_sample_times(video)
    kept = [0, 1, 2, 3, 6, 7, 8, 9]  # a hole at 4 and 5 s
    store_features(video, model_version, [times[i] for i in kept], frame_features[kept])

    verdicts = {v.head_version.head.category: v for v in settlement.analyse_and_announce(video)}

    assert set(verdicts) == {"nudity", "violence"}
    scores = FrameScore.objects.filter(head_version__head=violence).order_by("sample_ms")
    assert [s.sample_ms for s in scores] == [times[i] for i in kept]
    assert all(0.0 <= s.score <= 1.0 for s in scores)
    assert selectors.untrained_heads() == []
    heads.load_runner(verdicts["violence"].head_version)  # cached, loads without error


def test_heads_score_the_servers_vector_where_it_exists_else_the_most_severe_accepted_replica(
    mean_feature_head, make_analysed_video, store_features, model_version
):
    """The truth beats any replica; elsewhere one severe replica is enough, and pending or rejected ones never count."""
    video = make_analysed_video(seconds=3, fps=25)
    times = [0, 1000, 2000]
    store_features(video, model_version, [0], constant_features([1]), is_server=True)
    store_features(video, model_version, times, constant_features([5, 2, 1]))
    store_features(video, model_version, times, constant_features([4, 1, 3]))
    store_features(video, model_version, [2000], constant_features([6]), status=FrameFeature.Status.PENDING)
    store_features(video, model_version, [1000], constant_features([6]), status=FrameFeature.Status.REJECTED)

    settlement.analyse_and_announce(video)

    scores = dict(FrameScore.objects.filter(video=video).values_list("sample_ms", "score"))
    assert scores == {
        0: pytest.approx(1 / 6, abs=0.01),
        1000: pytest.approx(2 / 6, abs=0.01),
        2000: pytest.approx(3 / 6, abs=0.01),
    }

"""How much the server computes on a longer video, with a realistic mix of browsers, without and with liars.

Service level (the trust hook that record_frame_features calls; Celery eager): 20 samples, eight
returning honest viewers (most paint like Chromium's software path, one each like a GPU, a float
matrix and swscale), then the same with three new liars added. Prints the shares docs/trust.md reports.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference import selectors
from inference.ml.quantise import dequantise
from inference.models import ClientSession, FrameFeature, Recomputation
from inference.trust import services as trust
from inference.trust.tasks import cover_video
from tests.trust import harness
from tests.trust.harness import Behaviour
from tests.trust.test_services import establish, record, session_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PROFILES = ("chromium-software",) * 5 + ("gpu-bilinear-chroma", "float-matrix", "swscale")
LIARS = (Behaviour.RANDOM, Behaviour.OTHER_TIME, Behaviour.FLIP_TO_NUDE)


def watch(video, truth: harness.VideoTruth, model_version, head, *, liars: tuple[Behaviour, ...]) -> dict:
    """Viewers arrive one after another and send what they were assigned; then the deadline passes."""
    viewers = [(f"h{i}", Behaviour.HONEST, profile) for i, profile in enumerate(PROFILES)]
    viewers += [(f"l{i}", behaviour, "") for i, behaviour in enumerate(liars)]
    sessions = {}
    for i, (name, behaviour, profile) in enumerate(viewers):
        session = session_for(video, model_version, f"{video.pk}-{name}", ip=f"10.{video.pk % 200}.{i}.1")
        if behaviour is Behaviour.HONEST:
            establish(session)
        sessions[name] = (session, behaviour)
        times = trust.assign_samples(session, truth.times)
        viewer = harness.Viewer(name, behaviour, profile=profile or "chromium-software", seed=name)
        codes = np.stack([np.frombuffer(viewer.features(truth, t, [], head), np.uint8) for t in times])
        record(session, times, dequantise(codes))
    cover_video.delay(video.pk)
    states = {name: ClientSession.objects.get(pk=s.pk).state for name, (s, _) in sessions.items()}
    server = FrameFeature.objects.filter(video=video, session__is_server=True).count()
    return {
        "samples": len(truth.times),
        "server_frames": server,
        "server_share": round(server / len(truth.times), 3),
        "client_features_sent": FrameFeature.objects.filter(video=video, session__is_server=False).count(),
        "reasons": sorted(set(Recomputation.objects.filter(video=video).values_list("reason", flat=True))),
        "honest_quarantined": [
            n for n, (_, b) in sessions.items() if b is Behaviour.HONEST and states[n] == "quarantined"
        ],
        "liars_quarantined": sum(
            states[n] == "quarantined" for n, (_, b) in sessions.items() if b is not Behaviour.HONEST
        ),
    }


def test_share_of_frames_the_server_computes(ready_video, truth_of, nudity_head, model_version, seeded_spot_checks):
    runs = {}
    for run, liars in (("honest", ()), ("mixed", LIARS)):
        video = ready_video(f"long-{run}", pattern="calm", seconds=20, width=320, height=240)
        truth = truth_of(video)
        assert selectors.expected_sample_times(video) == truth.times
        runs[run] = watch(video, truth, model_version, nudity_head, liars=liars)
        assert runs[run]["honest_quarantined"] == []
        assert runs[run]["liars_quarantined"] == len(liars)
        assert len(selectors.coverage(video, model_version).covered_ms) == len(truth.times)
    print("\nTRUST-SHARE", json.dumps(runs))

"""client.js's bounds on what the analysis takes from the viewer (issue 17 items 3 and 4): the engine rests in
proportion to each frame's cost, frames never queue without bound, a hold stops the work, and the seeker stops
at its byte budget.

Runs the real module under Node with a fake engine, seeker, WebSocket and timers (tests/inference/js/); the same
behaviours in a real browser are tested in test_analysis_page.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "js" / "client_pacing.mjs"


@pytest.fixture(scope="module")
def outcome() -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    result = subprocess.run([node, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout.splitlines()[0])


def test_the_engine_rests_three_times_each_frames_cost_so_it_takes_a_quarter_of_a_core(outcome):
    pacing = outcome["pacing"]
    assert pacing["rests"] == [300, 120, 1200]
    assert pacing["engineMs"] == 540 and pacing["computed"] == 3


def test_frames_beyond_the_queue_bound_are_dropped_not_queued(outcome):
    queue = outcome["boundedQueue"]
    assert queue == {"waiting": 4, "inEngine": 1, "dropped": 5}


def test_a_hold_stops_capture_and_inference_until_released(outcome):
    hold = outcome["hold"]
    assert hold["whileHeld"] == {"calls": 0, "closed": 1, "state": "paused:hidden"}
    assert hold["afterRelease"] == {"calls": 1, "state": "running:"}


def test_the_seeker_is_disposed_once_its_bytes_reach_the_budget_and_grabs_nothing_more(outcome):
    budget = outcome["budget"]
    assert budget["before"] == {"seeker": True, "spent": False}
    assert budget["after"] == {"seeker": False, "spent": True, "disposed": True, "grabs": 0}

"""client.js's reaction to close codes (issue 13, item 2): fatal codes stop it and forget the session.

Runs the real module under Node with a fake WebSocket and timers (tests/inference/js/); the
codes themselves reaching a browser through daphne are tested in test_close_codes_daphne.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "js" / "client_close_codes.mjs"


@pytest.fixture(scope="module")
def outcomes() -> dict[tuple[int, ...], dict]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    result = subprocess.run([node, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=True)
    return {tuple(item["codes"]): item for item in json.loads(result.stdout.splitlines()[0])}


def test_an_abnormal_close_reconnects_and_resumes_the_session(outcomes):
    outcome = outcomes[(1006,)]
    assert outcome["connections"] == 2 and outcome["resumes"][1] == outcome["sessionId"] is not None
    assert outcome["state"] == "reconnecting"


@pytest.mark.parametrize("code", [4404, 4429, 4503])
def test_a_fatal_close_stops_the_client_and_forgets_the_session(outcomes, code):
    outcome = outcomes[(code,)]
    assert outcome["connections"] == 1, "no reconnect after a fatal close"
    assert outcome["state"] == "error" and outcome["sessionId"] is None


def test_a_refused_session_is_forgotten_and_a_refused_fresh_start_ends_the_work(outcomes):
    outcome = outcomes[(4409, 4409)]
    assert outcome["resumes"] == [None, None], "the refused session id is never offered again"
    assert outcome["connections"] == 2 and outcome["state"] == "error"

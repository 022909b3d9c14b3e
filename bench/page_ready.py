"""How soon a player page's analysis is ready, cold and on a warm browser cache (the page names its model,
so the client loads it while the socket connects and handshakes).

    python -m bench.page_ready [warm_visits]

The bench's own PostgreSQL and Redis and one daphne (``bench.hydra_path``), videos that need work, headless
Chromium with one fresh profile: the first visit is cold (empty HTTP cache, no remembered backend),
the next ``warm_visits`` are warm (model, bundle and wasm in the HTTP cache, backend remembered). Per visit,
milliseconds since navigation until the analysis script runs (``scriptMs``), until the model is loaded and
warmed (``modelReadyMs``) and until the server acknowledged the first feature (``firstFeatureMs``), as the page
records them, and the worker's own account of the load (download, load, per-backend timings).
"""

from __future__ import annotations

import json
import sys
import tempfile
from typing import Any

from bench.clips import rendition
from bench.hydra_path import _setup_site, make_videos
from bench.measure import median
from bench.private_servers import private_stack
from tests.browser import AUTOPLAY_ARGS, CHROMIUM_ARGS, CHROMIUM_PATH

READY = "['error', 'done'].includes(document.getElementById('hydra-analysis')?.dataset.state)"
FIRST = "document.getElementById('hydra-analysis')?.dataset.firstFeatureMs"


def visit(page, url: str) -> dict[str, Any]:
    page.goto(url)
    page.wait_for_function(f"Boolean({FIRST}) || {READY}", timeout=120_000)
    state = page.evaluate("({...document.getElementById('hydra-analysis').dataset})")
    return {
        "script_ms": int(state.get("scriptMs", -1)),
        "model_ready_ms": int(state.get("modelReadyMs", -1)),
        "first_feature_ms": int(state.get("firstFeatureMs", -1)),
        "backend": state.get("backend"),
        "load": json.loads(state.get("modelLoad", "null")),
        "state": state.get("state"),
    }


def visits(playwright, base: str, slugs: list[str]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM_PATH, args=[*CHROMIUM_ARGS, *AUTOPLAY_ARGS]
        )
        try:
            page = context.new_page()
            return [
                visit(page, f"{base}/v/{slug}/") | {"cache": "cold" if index == 0 else "warm"}
                for index, slug in enumerate(slugs)
            ]
        finally:
            context.close()


def measure(warm_visits: int = 3) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    seconds, width, height = 12, 640, 360
    with private_stack(DJANGO_ALLOWED_HOSTS="127.0.0.1") as stack:
        _setup_site(stack)
        clip = {
            "rendition": str(rendition(seconds=seconds, width=width, height=height)),
            "fps": 8.0,
            "duration_ms": seconds * 1000,
            "width": width,
            "height": height,
        }
        slugs = make_videos(1 + warm_visits, clip, stack.media_root)
        _, url = stack.start_daphne()
        base = url.replace("ws://", "http://")
        with sync_playwright() as playwright:
            made = visits(playwright, base, slugs)
        warm = [v for v in made if v["cache"] == "warm"]
        return {
            "visits": made,
            "cold_model_ready_ms": made[0]["model_ready_ms"],
            "cold_first_feature_ms": made[0]["first_feature_ms"],
            "warm_model_ready_ms_median": median(v["model_ready_ms"] for v in warm),
            "warm_first_feature_ms_median": median(v["first_feature_ms"] for v in warm),
        }


if __name__ == "__main__":
    print(json.dumps(measure(*[int(value) for value in sys.argv[1:2]]), indent=1))

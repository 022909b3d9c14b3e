"""What the player page's analysis costs the viewer: real clips played in headless Chromium with the analysis
off (opted out, same page) and on, in one browser, one run.

    python -m bench.playback [real_clips]

The bench's own PostgreSQL and Redis and one daphne (``bench.hydra_path``), headless Chromium with one profile
whose HTTP cache was warmed by a first visit (a returning viewer). Clips: ``real_clips`` clips of the
fight-surveillance set (Aktı et al., IPTA 2019; half fight, half not, about 2 s each: the short-clip case) and
a montage of a dozen of its clips (about 30 s), each transcoded as the site does it. Each clip is played from
the page's load to its end, muted, as a viewer who presses play at once; the model loads meanwhile.

Per visit: dropped and total frames (``getVideoPlaybackQuality``), main-thread long tasks (PerformanceObserver
``longtask``: over 50 ms), the CPU of every Chromium process over the playback (``/proc``: decoding, page,
worker, seeker, all counted), and with the analysis on, the engine's busy time (its inference ms), frames
captured from playback and by the seeker, and the seeker's bytes (Resource Timing ``transferSize``).
A last visit watches the montage's first seconds, pauses and stays: the seeker fetches the rest, up to the
visit's byte budget (``HYDRA_SEEKER_BYTES_PER_VISIT``), or until the page's work is done.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from bench.clips import CACHE_DIR, real_rendition
from bench.hydra_path import _setup_site, make_videos
from bench.measure import REPO_ROOT, process_cpu_s, process_tree
from bench.private_servers import private_stack
from tests.browser import AUTOPLAY_ARGS, launch_chromium

DATASET = REPO_ROOT.parent / "shared" / "datasets" / "fight-surveillance"
MONTAGE_CLIPS = 12
SKIM_WATCH_S = 5.0
SKIM_WAIT_S = 90.0
AFTER_END_WAIT_S = 30.0
# Before any page script: remember long tasks, and turn the analysis off for ?bench_analysis=off (the opt-out).
INIT_SCRIPT = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__longTasks.push(Math.round(entry.duration));
}).observe({ type: 'longtask', buffered: true });
try {
  if (location.search.includes('bench_analysis=off')) localStorage.setItem('hydra.analysis.optOut', '1');
  else localStorage.removeItem('hydra.analysis.optOut');
} catch {}
"""
PLAY = "(async () => { const v = document.getElementById('player'); v.muted = true; await v.play(); })()"
QUALITY = """(() => {
  const q = document.getElementById('player').getVideoPlaybackQuality();
  return { dropped: q.droppedVideoFrames, total: q.totalVideoFrames };
})()"""
STATE = "({...(document.getElementById('hydra-analysis')?.dataset ?? {})})"
FINISHED = "['done', 'error'].includes(document.getElementById('hydra-analysis')?.dataset.state)"
SEEKER_IDLE = f"{FINISHED} || document.getElementById('hydra-analysis')?.dataset.seeker === 'spent'"


def montage(sources: list[Path], cache_dir: Path = CACHE_DIR) -> Path:
    """The clips one after another at 480x360, 25 fps (ffmpeg), cached by their names."""
    target = cache_dir / f"montage-{sources[0].stem}-{len(sources)}.mp4"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    inputs = [arg for source in sources for arg in ("-i", str(source))]
    scaled = "".join(
        f"[{index}:v]scale=480:360:force_original_aspect_ratio=decrease,pad=480:360:-1:-1,fps=25,setsar=1[v{index}];"
        for index in range(len(sources))
    )
    joined = "".join(f"[v{index}]" for index in range(len(sources))) + f"concat=n={len(sources)}:v=1:a=0[out]"
    partial = target.with_suffix(".part.mp4")
    command = ["ffmpeg", "-loglevel", "error", "-y", *inputs, "-filter_complex", scaled + joined, "-map", "[out]"]
    subprocess.run([*command, str(partial)], check=True)
    partial.rename(target)
    return target


def clips(real_clips: int) -> list[dict[str, Any]]:
    fight = sorted((DATASET / "fight").glob("*.mp4"))
    calm = sorted((DATASET / "noFight").glob("*.mp4"))
    if not fight or not calm:
        raise FileNotFoundError(f"no fight-surveillance clips under {DATASET}")
    chosen = [clip for pair in zip(fight, calm, strict=False) for clip in pair][:real_clips]
    made = [real_rendition(path) for path in chosen]
    long = real_rendition(montage(calm[:MONTAGE_CLIPS]))
    return [*made, long | {"name": f"montage of {MONTAGE_CLIPS} noFight clips"}]


def chromium_cpu_s() -> float:
    """CPU seconds of every Chromium process this bench started (its descendants named chromium/chrome)."""
    total = 0.0
    for pid in process_tree(os.getpid()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            if b"chrom" in Path(command.decode(errors="replace")).name.encode():
                total += process_cpu_s(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def record_error(errors: list[str], message) -> None:
    """Console errors with their URL, except the posters the bench's videos lack (``make_videos`` links only
    the rendition), whose 404 says nothing about the analysis."""
    where = message.location.get("url", "")
    if message.type == "error" and not where.endswith("/poster.jpg"):
        errors.append(f"{message.text} ({where})")


def play_through(page, url: str, duration_ms: int) -> dict[str, Any]:
    """Load the page, play the clip at once to its end; what the playback cost and suffered."""
    cpu, started = chromium_cpu_s(), time.perf_counter()
    page.goto(url, wait_until="domcontentloaded")
    page.evaluate(PLAY)
    page.wait_for_function("document.getElementById('player').ended", timeout=duration_ms + 120_000)
    wall_s = time.perf_counter() - started
    cpu_s = chromium_cpu_s() - cpu
    quality = page.evaluate(QUALITY)
    return {
        "wall_s": round(wall_s, 3),
        "browser_cpu_s": round(cpu_s, 3),
        "browser_cpu_share": cpu_s / wall_s,
        "dropped_frames": quality["dropped"],
        "total_frames": quality["total"],
        "long_tasks_ms": page.evaluate("window.__longTasks"),
        "state_at_end": page.evaluate(STATE),
    }


def analysis_figures(page, played: dict[str, Any], wait_s: float) -> dict[str, Any]:
    """With the analysis on: the engine's share of the playback, then what the page did until its work was
    done (or ``wait_s`` passed)."""
    at_end = played.pop("state_at_end")
    with contextlib.suppress(PlaywrightTimeout):  # report the state reached
        page.wait_for_function(FINISHED, timeout=wait_s * 1000)
    final = page.evaluate(STATE)
    return played | {
        "engine_ms_during_playback": int(at_end.get("engineMs", 0)),
        "engine_share_during_playback": int(at_end.get("engineMs", 0)) / 1000 / played["wall_s"],
        "model_ready_ms": int(at_end.get("modelReadyMs", -1)),
        "captured_playback": int(final.get("capturedPlayback", 0)),
        "captured_seek": int(final.get("capturedSeek", 0)),
        "done": int(final.get("done", 0)),
        "total": int(final.get("total", 0)),
        "state": final.get("state"),
        "seeker_bytes": float(final.get("seekerBytes", 0)),
        "seeker": final.get("seeker"),
    }


class NetworkBytes:
    """Bytes the browser's network stack received per request (DevTools protocol), to check the page's own count
    of its seeker's bytes: the seeker's requests carry the ``#hydra-seeker`` fragment."""

    def __init__(self, context, page) -> None:
        self.requests: dict[str, dict[str, Any]] = {}
        session = context.new_cdp_session(page)
        session.on("Network.requestWillBeSent", self.sent)
        session.on("Network.dataReceived", self.received)
        session.on("Network.loadingFinished", self.finished)
        session.send("Network.enable")

    def sent(self, event: dict) -> None:
        request = event["request"]
        self.requests[event["requestId"]] = {
            "url": request["url"] + request.get("urlFragment", ""),
            "received": 0,
            "finished": 0,
        }

    def received(self, event: dict) -> None:
        if event["requestId"] in self.requests:
            self.requests[event["requestId"]]["received"] += event.get("encodedDataLength", 0)

    def finished(self, event: dict) -> None:
        if event["requestId"] in self.requests:
            self.requests[event["requestId"]]["finished"] = event.get("encodedDataLength", 0)

    def video_bytes(self, slug: str, *, seeker: bool) -> int:
        """Bytes of the video's rendition received for the seeker (``seeker``) or for the player."""
        return sum(
            max(request["received"], request["finished"])
            for request in self.requests.values()
            if f"/v/{slug}/video.mp4" in request["url"] and request["url"].endswith("#hydra-seeker") == seeker
        )


def skim(page, url: str) -> dict[str, Any]:
    """Watch the first seconds, pause and stay: the seeker fetches the rest until done or its budget is spent."""
    page.goto(url, wait_until="domcontentloaded")
    page.evaluate(PLAY)
    page.wait_for_timeout(SKIM_WATCH_S * 1000)
    page.evaluate("document.getElementById('player').pause()")
    started = time.perf_counter()
    with contextlib.suppress(PlaywrightTimeout):  # report the state reached
        page.wait_for_function(SEEKER_IDLE, timeout=SKIM_WAIT_S * 1000)
    final = page.evaluate(STATE)
    seeked = int(final.get("capturedSeek", 0))
    return {
        "watched_s": SKIM_WATCH_S,
        "seconds_after_pause": round(time.perf_counter() - started, 1),
        "captured_playback": int(final.get("capturedPlayback", 0)),
        "captured_seek": seeked,
        "done": int(final.get("done", 0)),
        "total": int(final.get("total", 0)),
        "seeker_bytes": float(final.get("seekerBytes", 0)),
        "seeker": final.get("seeker"),
        "seeker_bytes_per_frame": float(final.get("seekerBytes", 0)) / seeked if seeked else None,
    }


def summary(visits: list[dict[str, Any]], skimmed: dict[str, Any]) -> dict[str, Any]:
    """Dropped frames added: (dropped / total with the analysis) - (the same without), over all clips' frames.
    CPU share: the browser's CPU per second of playback with minus without, on the long clip (one core = 1)."""
    on = [visit["on"] for visit in visits]
    off = [visit["off"] for visit in visits]

    def dropped_share(runs: list[dict]) -> float:
        return sum(run["dropped_frames"] for run in runs) / max(1, sum(run["total_frames"] for run in runs))

    long = visits[-1]
    return {
        "playback_dropped_frames_added": dropped_share(on) - dropped_share(off),
        "dropped_share_off": dropped_share(off),
        "dropped_share_on": dropped_share(on),
        "analysis_cpu_share": long["on"]["browser_cpu_share"] - long["off"]["browser_cpu_share"],
        "engine_share_long_clip": long["on"]["engine_share_during_playback"],
        "long_tasks_over_50ms_on": sum(len(run["long_tasks_ms"]) for run in on),
        "long_tasks_over_50ms_off": sum(len(run["long_tasks_ms"]) for run in off),
        "longest_task_ms_on": max((ms for run in on for ms in run["long_tasks_ms"]), default=0),
        "longest_task_ms_off": max((ms for run in off for ms in run["long_tasks_ms"]), default=0),
        "seeker_bytes_per_visit": skimmed["seeker_bytes"],
        "seeker_bytes_per_frame": skimmed["seeker_bytes_per_frame"],
        "seeker_bytes_per_visit_network": skimmed.get("seeker_bytes_network"),
        "short_clips_fully_analysed": sum(1 for run in on[:-1] if run["total"] and run["done"] == run["total"]),
        "short_clips": len(on) - 1,
    }


def measure(real_clips: int = 4) -> dict[str, Any]:
    with private_stack(DJANGO_ALLOWED_HOSTS="127.0.0.1") as stack:
        _setup_site(stack)
        chosen = clips(real_clips)
        # Fresh videos (each needs work), made before Playwright runs its event loop in this thread.
        pairs = [make_videos(2, clip, stack.media_root) for clip in chosen]
        warm_up, skimmed_slug = make_videos(2, chosen[-1], stack.media_root)
        _, url = stack.start_daphne()
        base = url.replace("ws://", "http://")
        errors: list[str] = []
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright, extra_args=AUTOPLAY_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(INIT_SCRIPT)
            context.on("console", lambda message: record_error(errors, message))
            page = context.new_page()
            # A returning viewer: the bundle, wasm and model in the HTTP cache, the backend remembered.
            page.goto(f"{base}/v/{warm_up}/")
            page.wait_for_function("document.getElementById('hydra-analysis')?.dataset.modelReadyMs", timeout=120_000)
            visits = []
            for clip, (off_slug, on_slug) in zip(chosen, pairs, strict=True):
                off = play_through(page, f"{base}/v/{off_slug}/?bench_analysis=off", clip["duration_ms"])
                off.pop("state_at_end")
                on = play_through(page, f"{base}/v/{on_slug}/", clip["duration_ms"])
                on = analysis_figures(page, on, AFTER_END_WAIT_S)
                visits.append({"clip": clip["name"], "duration_ms": clip["duration_ms"], "off": off, "on": on})
            network = NetworkBytes(context, page)
            skimmed = skim(page, f"{base}/v/{skimmed_slug}/")
            page.wait_for_timeout(1000)
            skimmed["seeker_bytes_network"] = network.video_bytes(skimmed_slug, seeker=True)
            skimmed["player_bytes_network"] = network.video_bytes(skimmed_slug, seeker=False)
            page.goto("about:blank")
            browser.close()
        return {
            "visits": visits,
            "skim": skimmed,
            "console_errors": errors,
            "seeker_bytes_per_visit_setting": int(os.environ.get("HYDRA_SEEKER_BYTES_PER_VISIT", "16000000")),
            **summary(visits, skimmed),
        }


if __name__ == "__main__":
    print(json.dumps(measure(*[int(value) for value in sys.argv[1:2]]), indent=1))

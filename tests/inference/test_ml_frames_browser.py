"""The server's frames are the browser's frames: headless Chromium paints a video frame into a
canvas (what the player page feeds TF.js) and the pixels must equal ``decode_frames_at``'s."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from av.video.reformatter import Colorspace
from PIL import Image

from inference.ml.frames import decode_frames_at
from inference.sampling import sample_times_ms, seek_time_seconds
from tests.browser import SCREENSHOTS, launch_chromium
from tests.inference.test_ml_frames import encode
from videos.synthetic import iter_frames

# Seek a detached <video> to each time, draw it at its natural size, read the RGBA back.
PAINT_FRAMES_JS = """
async ({videoBase64, times}) => {
  const bytes = Uint8Array.from(atob(videoBase64), (c) => c.charCodeAt(0));
  const video = document.createElement("video");
  video.muted = true;
  video.src = URL.createObjectURL(new Blob([bytes], {type: "video/mp4"}));
  await new Promise((resolve, reject) => {
    video.onloadeddata = resolve;
    video.onerror = () => reject(new Error("video error " + (video.error && video.error.message)));
  });
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const ctx = canvas.getContext("2d", {willReadFrequently: true});
  // The callback fires once the seeked-to frame is presented; its mediaTime is that frame's pts.
  const seek = (t) => new Promise((resolve) => {
    video.requestVideoFrameCallback((now, metadata) => resolve(metadata.mediaTime));
    video.currentTime = t;
  });
  await seek(video.duration);  // leave the first frame, so that every seek below presents a new one
  const frames = [];
  const mediaTimes = [];
  for (const t of times) {
    mediaTimes.push(await seek(t));
    ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
    const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let binary = "";
    for (let i = 0; i < rgba.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, rgba.subarray(i, i + 0x8000));
    }
    frames.push(btoa(binary));
  }
  return {width: canvas.width, height: canvas.height, frames, mediaTimes};
}
"""


@pytest.fixture(scope="module")
def chromium_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        page.set_content("<!doctype html><title>frames</title>")
        yield page
        browser.close()


def browser_frames(page, path: Path, sample_ms: list[int], fps: int) -> tuple[np.ndarray, list[float]]:
    """RGB of the frames Chromium presents after seeking to each sample's centre, and their mediaTime in ms."""
    times = [seek_time_seconds(ms, fps) for ms in sample_ms]
    result = page.evaluate(
        PAINT_FRAMES_JS, {"videoBase64": base64.b64encode(path.read_bytes()).decode(), "times": times}
    )
    shape = (result["height"], result["width"], 4)
    rgb = np.stack([np.frombuffer(base64.b64decode(f), np.uint8).reshape(shape)[..., :3] for f in result["frames"]])
    return rgb, [t * 1000 for t in result["mediaTimes"]]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize(
    "width,height,colorspace,matrix_tag_only,pattern",
    [
        (320, 240, None, False, "calm"),  # untagged SD: Chromium picks BT.601
        (176, 144, Colorspace.ITU709, False, "erratic"),  # tagged BT.709, as Hydra's renditions are
        (176, 144, Colorspace.ITU709, True, "erratic"),  # a matrix tag alone is ignored: BT.601 again
        (1280, 720, None, False, "bars"),  # untagged HD: Chromium picks BT.709
    ],
)
def test_server_frames_equal_chromium_canvas_pixels(
    chromium_page, tmp_path, width, height, colorspace, matrix_tag_only, pattern
):
    fps = 24
    path = encode(
        tmp_path / "clip.mp4",
        iter_frames(pattern, 3, fps, width, height, seed=2),
        fps=fps,
        colorspace=colorspace,
        matrix_tag_only=matrix_tag_only,
    )
    samples = [*sample_times_ms(3000, fps, 1000), 1042]
    painted, media_times_ms = browser_frames(chromium_page, path, samples, fps)
    assert media_times_ms == pytest.approx([round(ms / (1000 / fps)) * 1000 / fps for ms in samples], abs=0.5)
    decoded = decode_frames_at(path, samples)
    assert painted.shape == decoded.shape
    difference = np.abs(painted.astype(np.int16) - decoded.astype(np.int16))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    side_by_side = np.concatenate(
        [painted[-1], decoded[-1], (difference[-1] * 50).clip(0, 255).astype(np.uint8)], axis=1
    )
    Image.fromarray(side_by_side).save(
        SCREENSHOTS / f"frames-chromium-vs-server-{width}x{height}-{colorspace}-{matrix_tag_only}.png"
    )
    # Measured here: identical pixels (difference 0) for all three cases.
    assert difference.max() == 0, f"max pixel difference {difference.max()}, mean {difference.mean():.4f}"

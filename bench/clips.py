"""Videos for the benchmarks: synthetic sources turned into renditions exactly as the site does it.

Sources are drawn by ``videos.synthetic`` (nothing downloaded) and transcoded with
``videos.media.transcode`` at the site's settings (720 lines at most, an IDR frame every
second), so the server decodes the same kind of file the browsers play. Both are cached
under ``var/bench/`` by their parameters: drawing 720p frames is the slow part.
"""

from __future__ import annotations

from pathlib import Path

from bench.measure import REPO_ROOT

CACHE_DIR = REPO_ROOT / "var" / "bench"


def rendition(
    *, seconds: int, width: int, height: int, fps: int = 8, pattern: str = "bars", cache_dir: Path = CACHE_DIR
) -> Path:
    """Path of the cached rendition of a synthetic clip, made on first use.

    8 frames per second by default, to keep drawing cheap: with an IDR frame at every sample
    time, the server decodes one intra frame per sample whatever the frame rate, and the
    Hydra path never touches pixels.
    """
    from django.conf import settings

    from videos import media
    from videos.synthetic import write_video

    name = f"{pattern}-{width}x{height}-{fps}fps-{seconds}s"
    target = cache_dir / f"{name}.rendition.mp4"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    source = write_video(
        cache_dir / f"{name}.source.mp4", seconds=seconds, fps=fps, width=width, height=height, pattern=pattern
    )
    partial = target.with_suffix(".part")
    media.transcode(
        source,
        partial,
        max_height=settings.HYDRA_RENDITION_MAX_HEIGHT,
        keyframe_seconds=settings.HYDRA_RENDITION_KEYFRAME_SECONDS,
    )
    partial.rename(target)
    source.unlink()
    return target


def real_rendition(source: Path, cache_dir: Path = CACHE_DIR) -> dict:
    """A real clip transcoded as the site does it (cached by name), as ``bench.hydra_path.make_videos`` takes it."""
    import json

    from django.conf import settings

    from videos import media

    target = cache_dir / f"real-{source.parent.name}-{source.stem}.rendition.mp4"
    described = target.with_suffix(".json")
    if not described.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        info = media.transcode(
            source,
            partial,
            max_height=settings.HYDRA_RENDITION_MAX_HEIGHT,
            keyframe_seconds=settings.HYDRA_RENDITION_KEYFRAME_SECONDS,
        )
        partial.rename(target)
        described.write_text(
            json.dumps({"fps": info.fps, "duration_ms": info.duration_ms, "width": info.width, "height": info.height})
        )
    name = f"{source.parent.name}/{source.name}"
    return {"rendition": str(target), "name": name, **json.loads(described.read_text())}

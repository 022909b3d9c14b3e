"""One Range request's server CPU, through Django and through nginx, on the same signed URL and the same daphne.

    python -m bench.media_ranges [requests]

The bench's own PostgreSQL and Redis, one daphne (the embedded default's Django media view) and a real nginx in
front of it (hydra_site/deploy/nginx-site.conf, as in production). ``requests`` Range requests of one second of
the bench rendition each, one after another, first to daphne, then to nginx; server CPU per request over every
server process (daphne, worker, PostgreSQL, Redis, nginx). The same rows are part of ``bench.hydra_path``'s
components (``range_request`` is nginx's, which the site-day model prices; ``range_request_django``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.hydra_path import Servers, _setup_site, make_videos, range_requests
from bench.measure import run_isolated
from bench.private_servers import private_stack


def measure(requests: int = 200, clip_seconds: int = 10) -> dict[str, Any]:
    clip = run_isolated("bench.server_only:rendition_codes", timeout=600, seconds=clip_seconds, width=1280, height=720)
    with private_stack() as stack:
        _setup_site(stack)
        servers = Servers(stack, 1)
        slug = make_videos(1, clip, stack.media_root)[0]
        chunk = int(Path(clip["rendition"]).stat().st_size / (clip["duration_ms"] / 1000))
        return range_requests(stack, servers.daphnes[0], servers.worker, slug, requests=requests, chunk=chunk)


if __name__ == "__main__":
    print(json.dumps(measure(*[int(value) for value in sys.argv[1:2]]), indent=1))

"""An extra viewer of a covered video: what its visit costs the server, before and after the page decides.

    python -m bench.extra_viewer [views] [repeats]

The bench's own PostgreSQL and Redis, one daphne and one worker (``bench.hydra_path``). A video is
covered by as many returning viewers as the trust layer wants replicas. Then, per repeat:

- socket visit (what every extra viewer cost before the page decided): ``views`` returning viewers
  open the analysis socket on the covered video, handshake, get their top-up, send it and leave;
  server CPU per viewer (the ``extra_viewer_on_covered_video`` row of ``bench.hydra_path``);
- page visit: ``views`` GETs of the player page, one after another from this process (its CPU is not
  counted); server CPU per view, and how many pages were drawn for an audit (carry the analysis);
- the page's decision alone (``inference.selectors.page_analyses``), called in this process on the
  same database and Redis: this process's CPU plus PostgreSQL's and Redis's, per call.

What an extra viewer costs the server for analysis now = decision + audit rate x socket visit (the
page itself is served whatever the analysis does, with or without Hydra). Medians of the repeats.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from typing import Any

from bench.hydra_path import ServerClock, Servers, _setup_site, decision_alone, measured_run, trust_rules
from bench.measure import BenchError, median, run_isolated
from bench.private_servers import private_stack
from bench.stack import Stack

ANALYSIS_MARKUP = re.compile(rb'<aside id="hydra-analysis"')


def page_views(stack: Stack, servers: Servers, slug: str, views: int) -> dict[str, Any]:
    """Server CPU of one player page view of ``slug``, and the share of pages that carried the analysis."""
    daphne, url = servers.daphnes[0]
    base = url.replace("ws://", "http://")
    clock = ServerClock(stack, [daphne], servers.worker)
    clock.begin()
    analysing = 0
    for index in range(views):
        request = urllib.request.Request(
            f"{base}/v/{slug}/", headers={"X-Forwarded-For": f"10.9.{index // 250}.{index % 250 + 1}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 200:
                raise BenchError(f"the player page was answered {response.status}")
            analysing += bool(ANALYSIS_MARKUP.search(response.read()))
    cpu = clock.elapsed()
    return {
        "views": views,
        "pages_with_analysis": analysing,
        "server_cpu_ms_per_view": {name: value / views * 1000 for name, value in cpu.items()},
    }


def measure(views: int = 40, repeats: int = 3, clip_seconds: int = 12) -> dict[str, Any]:
    clip = run_isolated("bench.server_only:rendition_codes", timeout=600, seconds=clip_seconds, width=1280, height=720)
    common = {"deadline_s": 60.0, "settle_timeout_s": 120.0}
    with private_stack() as stack:
        _setup_site(stack)
        rules = trust_rules()
        from django.conf import settings

        servers = Servers(stack, 1)
        first = servers.daphnes[:1]
        covering = measured_run(
            stack,
            clip,
            first,
            servers.worker,
            clients=rules["replicas"],
            videos=1,
            require_verdicts=True,
            returning=True,
            **common,
        )
        if not covering.get("complete"):
            raise BenchError(f"the video was not covered: {covering}")
        slug = covering["slugs"][0]
        sockets, pages, decisions = [], [], []
        for _ in range(repeats):
            run = measured_run(
                stack,
                clip,
                first,
                servers.worker,
                clients=views,
                videos=1,
                require_verdicts=False,
                returning=True,
                slugs=[slug],
                **common,
            )
            sockets.append(run["server_cpu_s"]["total"] * 1000 / max(1, run["connected_clients"]))
            pages.append(page_views(stack, servers, slug, views))
            decisions.append(decision_alone(stack, slug, calls=500))
        socket_ms = median(sockets)
        decision_ms = median(d["total"] for d in decisions)
        audit_rate = settings.HYDRA_TRUST_AUDIT_RATE
        return {
            "views_per_repeat": views,
            "repeats": repeats,
            "audit_rate": audit_rate,
            "socket_visit_ms": {"median": socket_ms, "runs": sockets},
            "page_view_ms": {"median": median(p["server_cpu_ms_per_view"]["total"] for p in pages), "runs": pages},
            "decision_ms": {"median": decision_ms, "runs": decisions},
            "pages_with_analysis": sum(p["pages_with_analysis"] for p in pages),
            "pages": sum(p["views"] for p in pages),
            "extra_view_server_cpu_ms_before": socket_ms,
            "extra_view_server_cpu_ms_after": decision_ms + audit_rate * socket_ms,
        }


if __name__ == "__main__":
    arguments = [int(value) for value in sys.argv[1:3]]
    print(json.dumps(measure(*arguments), indent=1))

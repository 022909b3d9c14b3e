"""The client address comes from a trusted proxy only (issue 13, item 7)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import websockets
from django.test import RequestFactory

from hydra_site import client_address
from hydra_site.client_address import parse_networks
from tests.live_site import ROOT, database_url, free_port, wait_for_port

TRUSTED = parse_networks(["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # nginx with $proxy_add_x_forwarded_for keeps what the client wrote on the left.
        ("127.0.0.1", "6.6.6.6, 203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", "6.6.6.6, 203.0.113.7, 10.1.2.3", "203.0.113.7"),  # two proxies of ours
        ("198.51.100.9", "6.6.6.6", "198.51.100.9"),  # not through our proxy: the header is ignored
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "not-an-address, 203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", "203.0.113.7, not-an-address", "127.0.0.1"),  # garbage from the right: stop at our proxy
        ("127.0.0.1", "10.0.0.5, 10.0.0.6", "10.0.0.5"),  # all trusted: the leftmost of them
        ("127.0.0.1", "[2001:db9::1]:4711", "2001:db9::1"),
        ("127.0.0.1", "203.0.113.7:51234", "203.0.113.7"),
    ],
)
def test_the_rightmost_untrusted_hop_is_the_client(peer, forwarded_for, expected):
    assert client_address.client_address(peer, forwarded_for, TRUSTED) == expected


def test_without_trusted_proxies_the_header_is_never_read():
    assert client_address.client_address("127.0.0.1", "6.6.6.6", []) == "127.0.0.1"


def test_requests_and_websocket_scopes_read_it_the_same_way(settings):
    settings.HYDRA_TRUSTED_PROXIES = TRUSTED
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    scope = {"client": ["127.0.0.1", 5000], "headers": [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7")]}
    assert client_address.from_request(request) == client_address.from_scope(scope) == "203.0.113.7"


def test_a_bad_trusted_proxy_setting_stops_the_start():
    env = {**os.environ, "HYDRA_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "HYDRA_TRUSTED_PROXIES" in result.stderr and "proxy.internal" in result.stderr


def procfile_web_command(port: int) -> list[str]:
    """The Procfile's web process, as production runs it, on a local port."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    words = shlex.split(line.removeprefix("web:").replace("${PORT:-8000}", str(port)))
    assert words[0].endswith("daphne")
    return [sys.executable, "-m", "daphne", *[("127.0.0.1" if word == "0.0.0.0" else word) for word in words[1:]]]


@pytest.mark.slow
def test_forged_forwarded_for_entries_do_not_escape_the_connect_limit(transactional_db, tmp_path: Path):
    """40 connects, each with a different forged left-hand entry, as nginx would forward them."""
    port = free_port()
    log = tmp_path / "daphne.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "HYDRA_TRUSTED_PROXIES": "127.0.0.1",
        "HYDRA_RATE_WS_CONNECT_IP": "30/3600",  # no refill while the test runs
    }
    with log.open("wb") as output:
        process = subprocess.Popen(procfile_web_command(port), cwd=ROOT, env=env, stdout=output, stderr=output)
        try:
            wait_for_port(process, port, log)

            async def connect(index: int) -> tuple[str, int | None]:
                headers = {"X-Forwarded-For": f"6.6.{index}.{index}, 203.0.113.7"}
                async with websockets.connect(
                    f"ws://127.0.0.1:{port}/ws/analysis/no-such-video/",
                    origin=f"http://127.0.0.1:{port}",
                    additional_headers=headers,
                    open_timeout=30,
                ) as connection:
                    message = json.loads(await asyncio.wait_for(connection.recv(), 30))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(connection.wait_closed(), 5)
                    return message["code"], connection.close_code

            async def all_connects():
                return [await connect(index) for index in range(40)]

            outcomes = asyncio.run(all_connects())
        finally:
            process.terminate()
            process.wait(timeout=30)
    codes = [code for code, _ in outcomes]
    assert codes[:30] == ["video_unavailable"] * 30
    assert codes[30:] == ["rate_limited"] * 10, "the forged entries all count as 203.0.113.7"
    assert {close for _, close in outcomes[30:]} == {4429}

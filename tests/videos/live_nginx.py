"""A real nginx (Debian's package) in front of a test daphne, as hydra_site/deploy/nginx-site.conf sets it up.

nginx runs as a non-daemon child with its own prefix (pid, logs, temporary files) on a free loopback port; the
site file is the one ``manage.py nginx_site`` prints, included in a minimal main configuration. Its access log
records each request's status and Range header, so tests can see which requests nginx answered itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hydra_site.deploy.nginx import render_site
from tests.live_site import free_port, wait_for_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MIME_TYPES = "/etc/nginx/mime.types"
ACCESS_LOG_FORMAT = '$request_method $uri $status $body_bytes_sent "$http_range"'


@dataclass(frozen=True)
class NginxSite:
    url: str
    access_log: Path
    process: subprocess.Popen

    def requests(self) -> list[tuple[str, str, int, int, str]]:
        """(method, path, status, body bytes, Range header) of every request nginx has logged so far."""
        rows = []
        for line in self.access_log.read_text().splitlines():
            method, path, status, sent, range_header = line.split(" ", 4)
            rows.append((method, path, int(status), int(sent), range_header.strip('"')))
        return rows


def _main_config(prefix: Path, site: Path) -> str:
    # Root's nginx would hand requests to "nobody", who cannot read pytest's private temporary folders.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    include {MIME_TYPES};  # as Debian's /etc/nginx/nginx.conf does for the sites it includes
    default_type application/octet-stream;
    log_format hydra_test '{ACCESS_LOG_FORMAT}';
    access_log {prefix / "access.log"} hydra_test;
{temp}
    include {site};
}}
"""


@contextmanager
def running_nginx(upstream_url: str, prefix: Path) -> Iterator[NginxSite]:
    """nginx on a free port in front of daphne at ``upstream_url``, with the site rendered from this process's
    settings (MEDIA_ROOT, STATIC_ROOT, the media URL secret); stopped on exit."""
    if not Path(NGINX).exists():
        raise RuntimeError("nginx is not installed: `make test` installs Debian's nginx package (APT_PACKAGES)")
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = prefix / "hydra-site.conf"
    site.write_text(render_site(listen=f"127.0.0.1:{port}", upstream=urlsplit(upstream_url).netloc))
    config = prefix / "nginx.conf"
    config.write_text(_main_config(prefix, site))
    error_log = prefix / "error.log"
    command = [NGINX, "-p", str(prefix), "-c", str(config), "-e", str(error_log), "-g", "daemon off;"]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    if checked.returncode != 0:
        raise RuntimeError(f"nginx refused the site:\n{checked.stderr}")
    with (prefix / "stderr.log").open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_for_port(process, port, error_log, name="nginx")
            yield NginxSite(f"http://127.0.0.1:{port}", prefix / "access.log", process)
        finally:
            process.terminate()  # SIGTERM: nginx's fast shutdown, workers included
            process.wait(timeout=30)

"""``manage.py nginx_site``: print the nginx site that serves this Hydra (media bytes from disk, the rest
proxied to daphne), from the settings it must agree with. See README, Production."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from hydra_site.deploy.nginx import render_site


class Command(BaseCommand):
    help = "Print the nginx site configuration (for /etc/nginx/sites-enabled/) rendered from the settings."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--listen", default="80", help="nginx's listen directive, e.g. 80 or 127.0.0.1:8080")
        parser.add_argument("--upstream", default="127.0.0.1:8000", help="daphne's address (host:port or unix:path)")
        parser.add_argument("--server-name", default="_", help="nginx's server_name")

    def handle(self, *args, listen: str, upstream: str, server_name: str, **options) -> None:
        self.stdout.write(render_site(listen=listen, upstream=upstream, server_name=server_name), ending="")

"""Settings come from the environment; production refuses to start without real secrets."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "HYDRA_", "DATABASE_", "REDIS_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_production_refuses_to_start_without_secrets():
    result = _manage("check", env={"HYDRA_ENV": "production"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
    assert "DATABASE_URL" in result.stderr


def test_production_with_real_secrets_passes_the_deploy_check():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "HYDRA_ENV": "production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
            "DJANGO_ALLOWED_HOSTS": "hydra.example",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/hydra",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_eager_tasks_so_nothing_transcodes_inside_a_request():
    result = _manage(
        "check",
        env={
            "HYDRA_ENV": "production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
            "DJANGO_ALLOWED_HOSTS": "hydra.example",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/hydra",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "HYDRA_TASKS_EAGER": "1",
        },
    )
    assert result.returncode != 0
    assert "HYDRA_TASKS_EAGER must be off in production" in result.stderr


def test_embedded_default_uses_sqlite_no_channel_layer_and_eager_tasks():
    code = (
        "import django;django.setup();from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], hasattr(s, 'CHANNEL_LAYERS'), s.CELERY_TASK_ALWAYS_EAGER)"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "HYDRA_", "DATABASE_", "REDIS_"))}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "hydra_site.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.split() == ["django.db.backends.sqlite3", "False", "True"]


def test_malformed_analysis_settings_stop_the_start_with_a_clear_message():
    for name, value in [
        ("HYDRA_ANALYSIS_COVERAGE_STEPS", "0.5,half"),
        ("HYDRA_ANALYSIS_COVERAGE_STEPS", "0,1"),
        ("HYDRA_ANALYSIS_COVERAGE_STEPS", "0.5,1.5"),
        ("HYDRA_SETTLE_DELAY_SECONDS", "0"),
    ]:
        result = _manage("check", env={name: value})
        assert result.returncode != 0, (name, value)
        assert "ImproperlyConfigured" in result.stderr and name in result.stderr, result.stderr[-500:]
    assert _manage("check", env={"HYDRA_ANALYSIS_COVERAGE_STEPS": "1.0,0.5"}).returncode == 0


def _trust_summary(env: dict[str, str]) -> str:
    code = "import django;django.setup();from hydra_site.startup import trust_summary;print(trust_summary())"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "HYDRA_", "DATABASE_", "REDIS_"))}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "hydra_site.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-500:]
    return out.stdout


def test_a_lone_viewer_is_one_replica_only_on_the_embedded_default():
    """make run: every browser is 127.0.0.1, so two independent viewers can never exist there (issue 18)."""
    embedded = _trust_summary({})
    assert "embedded default" in embedded and "HYDRA_TRUST_REPLICAS=1" in embedded
    assert "no delayed coverage task" in embedded
    # A lone local viewer is always a small audience: the summary says the server checks its samples.
    assert "fewer than 5 independent established viewers" in embedded and "within 0.2 of a head" in embedded
    served = _trust_summary({"REDIS_URL": "redis://127.0.0.1:6379/0", "HYDRA_TASKS_EAGER": "0"})
    assert "HYDRA_TRUST_REPLICAS=2" in served and "900 s after a video is ready" in served
    assert "HYDRA_TRUST_REPLICAS=3" in _trust_summary({"HYDRA_TRUST_REPLICAS": "3"})  # an explicit value wins

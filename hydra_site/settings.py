"""Hydra's settings, read from the environment.

With no environment at all the site runs on an embedded default: SQLite, a per-process
memory cache and Celery tasks executed in-process. ``DATABASE_URL`` and ``REDIS_URL``
switch to PostgreSQL, a shared Redis cache and a real Celery broker. ``HYDRA_ENV=production``
refuses to start without real secrets. Every variable is listed in the README.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from hydra_site.client_address import parse_networks

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


HYDRA_ENV = env_str("HYDRA_ENV", "development")
PRODUCTION = HYDRA_ENV == "production"

_INSECURE_KEY = "django-insecure-hydra-embedded-default-never-use-in-production"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", _INSECURE_KEY)
DEBUG = env_bool("DJANGO_DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# Our reverse proxies (addresses or CIDR networks): X-Forwarded-For is believed only up to them
# (hydra_site.client_address). Empty: the header is ignored and the TCP peer is the client.
try:
    HYDRA_TRUSTED_PROXIES = parse_networks(env_list("HYDRA_TRUSTED_PROXIES", []))
except ValueError as exc:
    raise ImproperlyConfigured(f"HYDRA_TRUSTED_PROXIES: {exc}") from None

if PRODUCTION:
    missing = [
        name
        for name, ok in (
            ("DJANGO_SECRET_KEY", SECRET_KEY != _INSECURE_KEY and len(SECRET_KEY) >= 50),
            ("DJANGO_ALLOWED_HOSTS", bool(ALLOWED_HOSTS)),
            ("DATABASE_URL", bool(env_str("DATABASE_URL"))),
            ("REDIS_URL", bool(env_str("REDIS_URL"))),
        )
        if not ok
    ]
    if missing:
        raise ImproperlyConfigured(
            "HYDRA_ENV=production needs real values for: " + ", ".join(missing) + " (see README, Configuration)."
        )
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_DEBUG must be off in production.")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "accounts",
    "videos",
    "inference",
    "moderation",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out login into accounts.lockout's answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "hydra_site.urls"
ASGI_APPLICATION = "hydra_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "notifications.context_processors.unread_notifications",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default writes from daphne's threads (the ingest writer, sessions) and from tasks run
    # in-process at once. A deferred transaction that reads, then writes, fails at once with "database is
    # locked" when another connection wrote meanwhile (its busy timeout cannot help); IMMEDIATE takes the
    # write lock at BEGIN, so writers queue on the busy timeout instead, and WAL lets readers go on beside
    # the writer (Django's SQLite notes, "Database is locked errors").
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# No CHANNEL_LAYERS: the only consumer (inference.consumers) talks to its own client alone and opts
# out of the channel layer, so Channels needs none.
REDIS_URL = env_str("REDIS_URL")

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env_bool("HYDRA_TASKS_EAGER", default=not REDIS_URL)
if PRODUCTION and CELERY_TASK_ALWAYS_EAGER:
    # Eager tasks would transcode and analyse inside the web request: minutes of CPU per upload in
    # a daphne process, which a SIGTERM does not stop and a client can start at will.
    raise ImproperlyConfigured("HYDRA_TASKS_EAGER must be off in production: tasks run in Celery workers.")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env_str("HYDRA_CELERY_QUEUE", "hydra")
# Run by the Procfile's `beat` process (exactly one per deployment).
CELERY_BEAT_SCHEDULE = {
    "sweep-stuck-videos": {"task": "videos.sweep_stuck_videos", "schedule": 300.0},
    # Videos drawing an audience that browsers do not cover go back to the base coverage deadline.
    "sweep-coverage-deadlines": {"task": "moderation.sweep_coverage_deadlines", "schedule": 60.0},
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Failed logins are counted by django-axes, per account and per client address separately, on
# every door that authenticates a password: /accounts/login/, /admin/login/, /api/auth/token/.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("HYDRA_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("HYDRA_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "hydra_site.client_address.from_request"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_VERBOSE = False
LOGIN_REDIRECT_URL = "videos:mine"
LOGOUT_REDIRECT_URL = "videos:home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("HYDRA_STATIC_ROOT", str(BASE_DIR / "var" / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Outside production WhiteNoise serves straight from the source folders (no collectstatic needed for `make run`).
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG


def _static_isolation_headers(headers, path: str, url: str) -> None:
    """Static files load into cross-origin-isolated player pages (COEP require-corp); a worker script must
    carry COEP itself or the browser refuses to start it."""
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers["Cross-Origin-Embedder-Policy"] = "require-corp"


WHITENOISE_ADD_HEADERS_FUNCTION = _static_isolation_headers


# Media is never exposed under a public URL: a page that checked who may see a video issues signed, expiring
# URLs for its rendition and poster (videos.media_urls); nginx (production) or Django (embedded) checks them.
MEDIA_ROOT = Path(env_str("HYDRA_MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
MEDIA_URL = None
HYDRA_MEDIA_SERVER = env_str("HYDRA_MEDIA_SERVER", "nginx" if PRODUCTION else "django")
if HYDRA_MEDIA_SERVER not in ("django", "nginx"):
    raise ImproperlyConfigured(f"HYDRA_MEDIA_SERVER must be django or nginx, not {HYDRA_MEDIA_SERVER!r}.")
# How long a signed media URL stays valid beyond the video's own length: how long a copied URL works while the
# video stays visible. Restricting or removing a video revokes its URLs at once (videos.services.revoke_media_urls
# renames the files); this bounds them only if that rename is interrupted.
HYDRA_MEDIA_URL_SECONDS = env_int("HYDRA_MEDIA_URL_SECONDS", 900)
if HYDRA_MEDIA_URL_SECONDS < 60:
    raise ImproperlyConfigured("HYDRA_MEDIA_URL_SECONDS must be at least 60.")
# Empty: derived from DJANGO_SECRET_KEY. It is written into nginx's site configuration (manage.py nginx_site).
HYDRA_MEDIA_URL_SECRET = env_str("HYDRA_MEDIA_URL_SECRET", "")
if HYDRA_MEDIA_URL_SECRET and not re.fullmatch(r"[A-Za-z0-9_-]{32,}", HYDRA_MEDIA_URL_SECRET):
    raise ImproperlyConfigured("HYDRA_MEDIA_URL_SECRET must be at least 32 letters, digits, '_' or '-'.")

# Uploads
HYDRA_MAX_UPLOAD_BYTES = env_int("HYDRA_MAX_UPLOAD_BYTES", 2 * 1024**3)
HYDRA_MAX_DURATION_SECONDS = env_int("HYDRA_MAX_DURATION_SECONDS", 4 * 3600)
# Transcoding work one upload may ask for (videos.media.FrameLimits): rendition frames in all
# (duration x rendition rate), and rendition frames per frame the file really holds.
HYDRA_MAX_RENDITION_FRAMES = env_int("HYDRA_MAX_RENDITION_FRAMES", 4 * 3600 * 30)
HYDRA_MAX_FRAME_DUPLICATION = env_float("HYDRA_MAX_FRAME_DUPLICATION", 10.0)
# Per account: uploads per hour, and bytes of originals kept (sign-up is open; each upload costs a transcode).
HYDRA_UPLOADS_PER_HOUR = env_int("HYDRA_UPLOADS_PER_HOUR", 20)
HYDRA_UPLOAD_QUOTA_BYTES = env_int("HYDRA_UPLOAD_QUOTA_BYTES", 20 * 1024**3)
HYDRA_MAX_DESCRIPTION_CHARS = env_int("HYDRA_MAX_DESCRIPTION_CHARS", 5000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "videos.uploads.SizeLimitedUploadHandler",
    "videos.uploads.ShortNameTemporaryFileUploadHandler",
]
FILE_UPLOAD_TEMP_DIR = env_str("HYDRA_UPLOAD_TEMP_DIR") or None

# Transcoding: one H.264/AAC MP4 rendition, square pixels, tagged colour, keyframe every N seconds.
HYDRA_RENDITION_MAX_HEIGHT = env_int("HYDRA_RENDITION_MAX_HEIGHT", 720)
HYDRA_RENDITION_KEYFRAME_SECONDS = env_float("HYDRA_RENDITION_KEYFRAME_SECONDS", 1.0)
# A processing video whose transcoder has not written a heartbeat for this long is re-queued (or
# failed after the attempts below) by the periodic sweep, videos.tasks.sweep_stuck_videos.
HYDRA_TRANSCODE_STUCK_SECONDS = env_int("HYDRA_TRANSCODE_STUCK_SECONDS", 600)
HYDRA_TRANSCODE_MAX_ATTEMPTS = env_int("HYDRA_TRANSCODE_MAX_ATTEMPTS", 3)

# Publication policy: "immediate" or "hold" (held until analysis clears the video).
HYDRA_PUBLICATION_POLICY = env_str("HYDRA_PUBLICATION_POLICY", "immediate")

# Notifications (notifications.services) go out through Django's e-mail backend as well as the in-site list:
# printed to the console unless EMAIL_HOST is set.
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Hydra <noreply@localhost>")

# Moderation: how many reports one user (or one IP address) may file per hour.
HYDRA_REPORTS_PER_HOUR = env_int("HYDRA_REPORTS_PER_HOUR", 10)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "hydra_site.api_errors.hydra_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Hydra API",
    "DESCRIPTION": "Upload and manage videos on Hydra.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the pinned drf-spectacular-sidecar package, served by WhiteNoise: /api/docs/ needs no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("HYDRA_LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Analysis: the CNN chunk's artefacts and which frames are analysed.
HYDRA_MODEL_ROOT = Path(env_str("HYDRA_MODEL_ROOT", str(BASE_DIR / "var" / "models")))
HYDRA_NSFWJS_DIR = Path(env_str("HYDRA_NSFWJS_DIR", str(BASE_DIR / "node_modules" / "nsfwjs")))
HYDRA_SAMPLE_INTERVAL_MS = env_int("HYDRA_SAMPLE_INTERVAL_MS", 1000)

# Cache: Redis when REDIS_URL (shared by all processes, so rate limits hold across daphne processes), else memory.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "hydra"}}
# Each process's own memory, for what every player page asks and may be a little stale
# (inference.selectors.page_analyses).
CACHES["process"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "hydra-process"}

# Trust and coverage (docs/trust.md explains every figure and how the defaults were measured).
# On the embedded default (no REDIS_URL: one machine, every browser from 127.0.0.1) a lone viewer is one
# replica: its features are accepted alone and, while the audience is small, the server checks every agreed sample.
# With REDIS_URL two independent viewers must agree (docs/trust.md, "The embedded default").
EMBEDDED_DEFAULT = not REDIS_URL
HYDRA_TRUST_REPLICAS = env_int("HYDRA_TRUST_REPLICAS", 1 if EMBEDDED_DEFAULT else 2)
HYDRA_TRUST_MIN_ASSIGNMENT = env_int("HYDRA_TRUST_MIN_ASSIGNMENT", 4)
# Share of player pages of a fully covered video that still analyse (an audit replica; docs/trust.md, "Audits").
HYDRA_TRUST_AUDIT_RATE = env_float("HYDRA_TRUST_AUDIT_RATE", 0.01)
HYDRA_TRUST_MIN_COSINE = env_float("HYDRA_TRUST_MIN_COSINE", 0.95)
HYDRA_TRUST_MAX_NORM_RATIO = env_float("HYDRA_TRUST_MAX_NORM_RATIO", 1.15)
HYDRA_TRUST_MAX_HEAD_DIFFERENCE = env_float("HYDRA_TRUST_MAX_HEAD_DIFFERENCE", 0.1)
# Peer-agreed samples scoring within this of a per-frame head's threshold are computed by the server.
HYDRA_TRUST_BORDERLINE_MARGIN = env_float("HYDRA_TRUST_BORDERLINE_MARGIN", 0.2)
# How far one sample's difference may move a window logit of a pooled head (the violence head) for two
# features to agree; honest close paintings measured at most 11.8 (docs/trust.md).
HYDRA_TRUST_MAX_WINDOW_DIFFERENCE = env_float("HYDRA_TRUST_MAX_WINDOW_DIFFERENCE", 12.0)
# A record is established after this many server-verified results (distinct videos); from then on it sets the
# spot-check rate (10 / (n + 1))^2, never below the floor.
HYDRA_TRUST_PROBATION_RESULTS = env_int("HYDRA_TRUST_PROBATION_RESULTS", 10)
HYDRA_TRUST_SPOT_CHECK_FLOOR = env_float("HYDRA_TRUST_SPOT_CHECK_FLOOR", 0.02)
# A newcomer (a record not yet established) counts only beside an established independent contributor or the
# server; the checks drawn because it is new are a budget of this many per record, over its whole life, drawn at
# HYDRA_TRUST_PROBATION_CHECK_RATE per accepted sample (at most one per video and pass). docs/trust.md, defence 4.
HYDRA_TRUST_PROBATION_CHECKS = env_int("HYDRA_TRUST_PROBATION_CHECKS", 5)
HYDRA_TRUST_PROBATION_CHECK_RATE = env_float("HYDRA_TRUST_PROBATION_CHECK_RATE", 0.25)
# A record (an account, else the anonymous devices of one network) grows by at most this many per day
# of its age, and at most once per distinct video.
HYDRA_TRUST_RECORD_PER_DAY = env_float("HYDRA_TRUST_RECORD_PER_DAY", 10.0)
# Below this many independent established viewers who arrived apart, every sample peers agree on is
# checked by the server; viewers arriving within the window of the last counted one count once.
HYDRA_TRUST_MIN_AUDIENCE = env_int("HYDRA_TRUST_MIN_AUDIENCE", 5)
HYDRA_TRUST_ARRIVAL_WINDOW_SECONDS = env_float("HYDRA_TRUST_ARRIVAL_WINDOW_SECONDS", 60.0)
# A browser session silent this long (no hello, no batch) is closed and its unsent samples go back to
# the pool; it may still resume. Watching pages send a batch within seconds of each sample.
HYDRA_TRUST_SESSION_STALE_SECONDS = env_int("HYDRA_TRUST_SESSION_STALE_SECONDS", 300)
# Coverage deadline of an unwatched video (docs/trust.md defence 7, moderation.services.start_coverage_deadline):
# the base, for a new uploader, an uploader under review and any video a case touched. Each clean upload of the
# uploader's record adds a step, up to the maximum; the record counts at most RECORD_PER_DAY uploads a calendar
# day, UTC (so the maximum takes uploads on at least 8 calendar days, a little over 6 days elapsed, at the
# defaults). A video that drew AUDIENCE_VIEWS counted views without being fully covered goes back to the base
# (moderation.tasks sweep).
HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS = env_int("HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS", 900)
HYDRA_TRUST_COVERAGE_MAX_DEADLINE_SECONDS = env_int("HYDRA_TRUST_COVERAGE_MAX_DEADLINE_SECONDS", 6 * 3600)
HYDRA_TRUST_COVERAGE_SECONDS_PER_CLEAN_UPLOAD = env_int("HYDRA_TRUST_COVERAGE_SECONDS_PER_CLEAN_UPLOAD", 900)
HYDRA_TRUST_UPLOADER_RECORD_PER_DAY = env_int("HYDRA_TRUST_UPLOADER_RECORD_PER_DAY", 3)
HYDRA_TRUST_COVERAGE_AUDIENCE_VIEWS = env_int("HYDRA_TRUST_COVERAGE_AUDIENCE_VIEWS", 10)
HYDRA_TRUST_COVERAGE_SLACK_SECONDS = env_int("HYDRA_TRUST_COVERAGE_SLACK_SECONDS", 60)
HYDRA_TRUST_SERVER_SECONDS_PER_SAMPLE = env_float("HYDRA_TRUST_SERVER_SECONDS_PER_SAMPLE", 0.25)
# A coverage task waits in hops no longer than this (inference.scheduling.schedule_coverage): Redis redelivers a
# task delayed past its visibility timeout (1 h by default) to a second worker while the first still holds it.
HYDRA_TRUST_COVERAGE_HOP_SECONDS = env_int("HYDRA_TRUST_COVERAGE_HOP_SECONDS", 1800)
# The heads score the most severe of a sample's accepted client vectors: one per contributor record, the first this
# many records (inference.selectors.accepted_features). 6 keeps the shipped violence window of 3 samples exactly
# scored (6^3 = 216 combinations, within inference.ml.violence.SEVERE_COMBINATIONS), whatever the crowd.
HYDRA_TRUST_SCORED_REPLICAS = env_int("HYDRA_TRUST_SCORED_REPLICAS", 6)
HYDRA_RATE_LIMITS = {
    # name: (events, per seconds). Override with HYDRA_RATE_<NAME>="events/seconds", e.g. HYDRA_RATE_WS_MESSAGE_IP=5/60.
    # Reports have their own single rule, HYDRA_REPORTS_PER_HOUR (hydra_site.ratelimit.check_client_limit).
    name: tuple(int(part) for part in env_str(f"HYDRA_RATE_{name.upper()}", default).split("/", 1))
    for name, default in {
        "ws_connect_ip": "30/60",
        "ws_connect_account": "30/60",
        "ws_message_ip": "600/60",
        "ws_message_account": "300/60",
    }.items()
}

# Verdicts are (re)computed when the share of analysed samples first reaches each of these steps.


def coverage_steps(values: list[str]) -> list[float]:
    """Shares of a video's samples in (0, 1], ascending; anything else is a configuration error, said at start."""
    try:
        steps = sorted(float(value) for value in values)
    except ValueError:
        steps = []
    if not steps or not all(0.0 < step <= 1.0 for step in steps):
        raise ImproperlyConfigured(
            f"HYDRA_ANALYSIS_COVERAGE_STEPS must be comma-separated shares in (0, 1], e.g. 0.25,0.5,1.0; got {values}"
        )
    return steps


HYDRA_ANALYSIS_COVERAGE_STEPS = coverage_steps(
    env_list("HYDRA_ANALYSIS_COVERAGE_STEPS", ["0.25", "0.5", "0.75", "1.0"])
)
# The websocket path only stores features; a worker judges and analyses a video's new features in one
# pass at most this often (the first batch after a pass queues the next one with this countdown).
HYDRA_SETTLE_DELAY_SECONDS = env_float("HYDRA_SETTLE_DELAY_SECONDS", 2.0)
if HYDRA_SETTLE_DELAY_SECONDS <= 0:
    raise ImproperlyConfigured("HYDRA_SETTLE_DELAY_SECONDS must be a positive number of seconds.")

# Bytes the player page's hidden seeker may download on one visit to fetch frames the viewer does not watch
# (frames the viewer watches cost nothing extra). 0: only watched frames are analysed in the browser.
HYDRA_SEEKER_BYTES_PER_VISIT = env_int("HYDRA_SEEKER_BYTES_PER_VISIT", 16_000_000)
if HYDRA_SEEKER_BYTES_PER_VISIT < 0:
    raise ImproperlyConfigured("HYDRA_SEEKER_BYTES_PER_VISIT must be a number of bytes, 0 or more.")

# Analysis websocket (inference.consumers): limits on what one client session may send.
HYDRA_WS_MAX_MESSAGE_BYTES = env_int("HYDRA_WS_MAX_MESSAGE_BYTES", 128 * 1024)
HYDRA_WS_MAX_BATCH = env_int("HYDRA_WS_MAX_BATCH", 64)
HYDRA_WS_RATE_PER_SECOND = env_float("HYDRA_WS_RATE_PER_SECOND", 4.0)
HYDRA_WS_RATE_BURST = env_int("HYDRA_WS_RATE_BURST", 16)
HYDRA_WS_MAX_ERRORS = env_int("HYDRA_WS_MAX_ERRORS", 20)
# The ingest writer (inference.ingest) waits this long before a flush, so that batches arriving together share it.
HYDRA_INGEST_LINGER_MS = env_float("HYDRA_INGEST_LINGER_MS", 2.0)

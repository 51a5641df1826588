"""Django settings for ScriptOps.

Everything comes from environment variables with safe defaults (see the README's
table). The default install is one machine, SQLite under the data dir, and the
django-q2 ORM broker; ``DATABASE_URL`` and ``SCRIPTOPS_REDIS_URL`` scale it out.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import dj_database_url
import django_stubs_ext
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from core.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    secret_key_from,
)

# ModelAdmin[Run], QuerySet[Run]...: the generic forms the type stubs declare, usable at
# run time (DRF's classes are added in core's AppConfig.ready, once DRF can be imported).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

DATA_DIR = Path(env_str("SCRIPTOPS_DATA_DIR") or BASE_DIR / "var").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = secret_key_from(DATA_DIR)
DEBUG = env_bool("SCRIPTOPS_DEBUG", default=False)
ALLOWED_HOSTS = env_list("SCRIPTOPS_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("SCRIPTOPS_CSRF_TRUSTED_ORIGINS", default=[])

# Not "daphne": its app exists for `runserver` (unused here: `serve` starts daphne itself)
# and imports Twisted's reactor and autobahn at start-up, ~25 MB in every process — the
# runner and the django-q2 workers never serve HTTP.
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_q",
    "axes",  # sign-in lockout (core.lockout)
    "csp",  # Content-Security-Policy (the header; its template tags are unused)
    # Layers, bottom to top (import-linter keeps them: see pyproject.toml).
    "core",
    "audit",
    "analytics",
    "prechecks",
    "runs",
    "library",
    "scheduler",
    "dashboard",
    "scriptops",
]

# WhiteNoise (sync only) sits innermost: between async-capable middleware it made Django
# hop threads three times per request under daphne; this way the chain runs in one mode
# and each request takes one hop (measured: GET of a run 17.7 -> 12.7 ms p50).
MIDDLEWARE = [
    "core.middleware.RejectNulMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Seed 003's X-CSRF-Token header, read as Django's X-CSRFToken: before the CSRF check.
    "core.middleware.CsrfHeaderAliasMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The request being served, for the audit log's actor, address and user agent.
    "core.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a sign-in that locked its client out into the lockout page (core.lockout).
    "axes.middleware.AxesMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
]

ROOT_URLCONF = "scriptops.urls"
APPEND_SLASH = False

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
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "scriptops.asgi.application"

# --- Database ---------------------------------------------------------------
# SQLite by default: WAL so readers never block the writer, a generous busy timeout
# and IMMEDIATE transactions so a write transaction takes the lock up front instead of
# failing with "database is locked" when it upgrades from a read.
_default_db = f"sqlite:///{DATA_DIR / 'scriptops.sqlite3'}"
# Persistent connections: re-opening SQLite (and re-running its PRAGMAs) per request,
# per task and per broker poll measurably slowed bursts of launches.
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL") or _default_db, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["ENGINE"] = "core.db.sqlite3"  # writers queue fairly (see there)
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": (
            "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;"
            "PRAGMA busy_timeout=30000;PRAGMA foreign_keys=ON;"
        ),
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "core.User"
# The lockout check first (it refuses a locked-out client before any password is
# checked), then Django's usual password check.
AUTHENTICATION_BACKENDS = [
    "core.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve from the finders too, so a fresh clone works without collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security: headers, cookies, the production profile (docs/security.md) -----------
# One settings module; SCRIPTOPS_PROFILE=production adds what needs HTTPS (secure
# cookies, HSTS, the redirect to HTTPS). Everything that also works over plain HTTP on
# a laptop — CSP, nosniff, the referrer policy, frame denial — is on in every profile,
# so the browser tests run under the same policy as production.
PROFILE = env_str("SCRIPTOPS_PROFILE") or "default"
if PROFILE not in ("default", "production"):
    raise ImproperlyConfigured(f"SCRIPTOPS_PROFILE must be default or production, not {PROFILE!r}")
PRODUCTION = PROFILE == "production"

SESSION_COOKIE_HTTPONLY = True
# The dashboard's scripts read the CSRF token from its cookie (static/js/common.js); an
# HttpOnly CSRF cookie protects nothing (Django's docs), the session cookie is HttpOnly.
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Only the app's own scripts, styles and connections (websockets included: 'self'
# matches ws:/wss: of the same host). No inline script or style anywhere: templates
# carry neither (tests/browser/test_csp.py fails on any violation).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],  # data: for the icons inside Swagger UI's stylesheet
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# Behind a TLS-terminating proxy: the header it sets to say the client used HTTPS (e.g.
# X-Forwarded-Proto). daphne started with --proxy-headers (as `serve` does) already
# reads X-Forwarded-Proto itself; this is for other set-ups. Only name a header the
# proxy always sets (or strips), or a client could claim HTTPS.
_ssl_header = env_str("SCRIPTOPS_PROXY_SSL_HEADER")
if _ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _ssl_header.strip().upper().replace("-", "_"), "https")
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SCRIPTOPS_SSL_REDIRECT", default=True)
    # A load balancer's plain-HTTP health probe is not redirected.
    SECURE_REDIRECT_EXEMPT = [r"^api/health/?$"]
    SECURE_HSTS_SECONDS = env_int("SCRIPTOPS_HSTS_SECONDS", default=365 * 24 * 3600, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SCRIPTOPS_HSTS_INCLUDE_SUBDOMAINS", default=True)
    # The preload token only matters if the domain's owner submits it to hstspreload.org.
    SECURE_HSTS_PRELOAD = env_bool("SCRIPTOPS_HSTS_PRELOAD", default=True)

# --- Brute force: sign-in lockout (django-axes, core.lockout) ----------------------
LOGIN_FAILURE_LIMIT = env_int("SCRIPTOPS_LOGIN_FAILURE_LIMIT", default=5, minimum=1)
LOGIN_ADDRESS_FAILURE_LIMIT = env_int("SCRIPTOPS_LOGIN_ADDRESS_FAILURE_LIMIT", default=20, minimum=1)
LOGIN_COOLOFF_MINUTES = env_float("SCRIPTOPS_LOGIN_COOLOFF_MINUTES", default=15.0, minimum=0.1)
LOGIN_COOLOFF_MAX_MINUTES = env_float("SCRIPTOPS_LOGIN_COOLOFF_MAX_MINUTES", default=24 * 60.0, minimum=0.1)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = "core.lockout.cooloff"
AXES_HANDLER = "core.lockout.LockoutHandler"
# The pair first, then the address: core.lockout.LockoutHandler relies on this order.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_CLIENT_IP_CALLABLE = "core.lockout.client_address"
AXES_LOCKOUT_CALLABLE = "core.lockout.lockout_response"
AXES_USE_ATTEMPT_EXPIRATION = True  # each row keeps its own (growing) expiry
# A success does not wipe the address's failures: one valid account would otherwise
# reset the count between guesses at others.
AXES_RESET_ON_SUCCESS = False
# No row per successful sign-in (an ever-growing table): only failures are kept.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

# --- Brute force: API key guessing (core.key_guard) --------------------------------
API_KEY_FAILURE_LIMIT = env_int("SCRIPTOPS_API_KEY_FAILURE_LIMIT", default=20, minimum=1)
API_KEY_FAILURE_WINDOW = env_int("SCRIPTOPS_API_KEY_FAILURE_WINDOW", default=600, minimum=1)

# The audit log (audit app): events older than this many days are deleted daily.
AUDIT_RETENTION_DAYS = env_int("SCRIPTOPS_AUDIT_RETENTION_DAYS", default=365, minimum=1)

# --- ScriptOps ----------------------------------------------------------------
REDIS_URL = env_str("SCRIPTOPS_REDIS_URL") or None
ALLOWED_ROOTS = [
    Path(p).expanduser()
    for p in env_list("SCRIPTOPS_ALLOWED_ROOTS", default=[str(DATA_DIR / "scripts")], sep=os.pathsep)
]
if "SCRIPTOPS_ALLOWED_ROOTS" not in os.environ:
    (DATA_DIR / "scripts").mkdir(exist_ok=True)
UPLOADS_ROOT = DATA_DIR / "uploads"
RUNS_DIR = DATA_DIR / "runs"
# Where run output is read from: "local" (files under RUNS_DIR; several hosts must share
# them, e.g. over NFS) or "database" (mirrored to the database as the worker writes it:
# any host sharing the database reads it, live and after the run). Database on PostgreSQL.
OUTPUT_STORE = env_str("SCRIPTOPS_OUTPUT_STORE") or (
    "database" if DATABASES["default"]["ENGINE"].endswith("postgresql") else "local"
)
if OUTPUT_STORE not in ("local", "database"):
    raise ImproperlyConfigured(f"SCRIPTOPS_OUTPUT_STORE must be local or database, not {OUTPUT_STORE!r}")
# django-q2 worker processes: library scans and other background tasks. Runs do not
# take one each: a runner process per host supervises up to MAX_RUNS of them at once.
WORKERS = env_int("SCRIPTOPS_WORKERS", default=2, minimum=1)
MAX_RUNS = env_int("SCRIPTOPS_MAX_RUNS", default=500, minimum=1)
MAX_OUTPUT_BYTES = env_int("SCRIPTOPS_MAX_OUTPUT_BYTES", default=50 * 1024 * 1024, minimum=1024)
MAX_UPLOAD_BYTES = env_int("SCRIPTOPS_MAX_UPLOAD_BYTES", default=1024 * 1024, minimum=1)
STOP_GRACE = env_float("SCRIPTOPS_STOP_GRACE", default=5.0, minimum=0.0)
HEARTBEAT_INTERVAL = env_float("SCRIPTOPS_HEARTBEAT_INTERVAL", default=5.0, minimum=0.5)
# Library: scripts gone from disk stay (marked missing) this long before a scan removes
# them; scans read at most LIBRARY_MAX_READ_BYTES of a file; the content endpoint serves
# at most LIBRARY_CONTENT_MAX_BYTES (413 beyond).
LIBRARY_MISSING_GRACE = env_float("SCRIPTOPS_LIBRARY_MISSING_GRACE", default=7 * 86400.0, minimum=0.0)
LIBRARY_MAX_READ_BYTES = env_int("SCRIPTOPS_LIBRARY_MAX_READ_BYTES", default=10 * 1024 * 1024, minimum=1024)
LIBRARY_CONTENT_MAX_BYTES = env_int(
    "SCRIPTOPS_LIBRARY_CONTENT_MAX_BYTES", default=2 * 1024 * 1024, minimum=1024
)
# Scheduler: a due time seen later than this counts as missed (misfire policy); the
# largest webhook body (it becomes SCRIPTOPS_WEBHOOK_PAYLOAD; 413 beyond); due tasks
# handled per tick.
SCHEDULER_MISFIRE_GRACE = env_float("SCRIPTOPS_SCHEDULER_MISFIRE_GRACE", default=120.0, minimum=1.0)
SCHEDULER_WEBHOOK_MAX_BYTES = env_int("SCRIPTOPS_WEBHOOK_MAX_BYTES", default=64 * 1024, minimum=1024)
SCHEDULER_TICK_BATCH = env_int("SCRIPTOPS_SCHEDULER_TICK_BATCH", default=1000, minimum=1)
HEARTBEAT_TIMEOUT = env_float("SCRIPTOPS_HEARTBEAT_TIMEOUT", default=30.0, minimum=2.0)
# "Jump to first error" in the log viewer: the first stderr line, or an earlier line of
# stdout matching this (a Python regular expression; checked at start-up).
_LOG_ERROR_PATTERN = env_str(
    "SCRIPTOPS_LOG_ERROR_PATTERN", default=r"(?i)\b(error|exception|traceback|fatal|panic)\b"
)
try:
    LOG_ERROR_PATTERN = re.compile(_LOG_ERROR_PATTERN or "$^")
except re.error as exc:
    raise ImproperlyConfigured(
        f"SCRIPTOPS_LOG_ERROR_PATTERN is not a valid regular expression: {exc}"
    ) from exc
# Tells this machine from others with the same host name (core.hostid); derived when unset.
HOST_ID = env_str("SCRIPTOPS_HOST_ID", default="") or ""
CONTROL_POLL_INTERVAL = env_float("SCRIPTOPS_CONTROL_POLL", default=0.05, minimum=0.01)
SCRIPT_PYTHON = env_str("SCRIPTOPS_PYTHON") or sys.executable
SCRIPT_PATH = env_str("SCRIPTOPS_SCRIPT_PATH") or "/usr/local/bin:/usr/bin:/bin"
ENV_DENY = env_list(
    "SCRIPTOPS_ENV_DENY",
    default=[
        "LD_*",
        "DYLD_*",
        "PYTHONSTARTUP",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONINSPECT",
        "BASH_ENV",
        "ENV",
        "IFS",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "SCRIPTOPS_*",
    ],
)
ADMIN_PASSWORD = env_str("SCRIPTOPS_ADMIN_PASSWORD")

# --- Background workers (django-q2) -------------------------------------------
# A run may last for hours: the broker must never hand the same task to a second
# worker while the first still runs it, so `retry` is ten years, and the cluster
# `timeout` (which django-q2 requires below `retry`) is nine: in effect no global
# limit; a run's own timeout is enforced by the runner. The runner also claims each
# run with a compare-and-set, so even a re-delivery would be inert.
Q_CLUSTER: dict[str, object] = {
    "name": env_str("SCRIPTOPS_QUEUE_NAME") or "scriptops",
    "workers": WORKERS,
    "timeout": 9 * 365 * 24 * 3600,
    "retry": 10 * 365 * 24 * 3600,
    "max_attempts": 1,
    "ack_failures": True,
    "queue_limit": WORKERS,
    # The database broker takes up to this many tasks per write (core.broker).
    "bulk": WORKERS,
    # The task workers' queue (scans, background tasks; runs have their own, read on a
    # wake-up): a poll every 0.1 s costs ~2 % of a core less than every 20 ms.
    "poll": env_float("SCRIPTOPS_QUEUE_POLL", default=0.1, minimum=0.005),
    "catch_up": False,
    # The Run row records everything; django-q2's own result rows would only cost a
    # write lock per task (measured: bursts ~10% slower).
    "save_limit": -1,
    "label": "Task queue",
    "orm": "default",
    "broker_class": "core.broker.DatabaseBroker",
}
# The runs' own queue on the same broker, taken by the runner processes only (runs.host).
RUNS_QUEUE = f"{Q_CLUSTER['name']}-runs"
if REDIS_URL:
    Q_CLUSTER.pop("orm")
    Q_CLUSTER.pop("broker_class")
    Q_CLUSTER["redis"] = REDIS_URL

# No CHANNEL_LAYERS: live views read the output store and the database, woken by
# Redis pub/sub (runs.events), so nothing is sent through a channel layer.

if REDIS_URL:
    # Django's Redis cache, its client kept (core/cache.py).
    CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": REDIS_URL}}

# --- API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.authentication.ApiKeyAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.permissions.RolePermission"],
    # DRF's parsers, with the JSON body bounded by DATA_UPLOAD_MAX_MEMORY_SIZE (413).
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.exception_handler.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "core.throttling.PrincipalRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "principal": env_str("SCRIPTOPS_THROTTLE_RATE") or "6000/min",
        "anon": env_str("SCRIPTOPS_THROTTLE_ANON_RATE") or "120/min",
        # Scheduler webhooks need no login (the token is the credential): per client address.
        "scheduler_hook": env_str("SCRIPTOPS_WEBHOOK_RATE") or "60/min",
    },
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "ScriptOps API",
    "DESCRIPTION": "Catalogue, launch, supervise and study scripts.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "/static/img/favicon.svg",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("SCRIPTOPS_LOG_LEVEL") or "INFO"},
    "loggers": {
        "django_q": {"level": "WARNING"},
        "django-q": {"level": "WARNING"},  # django-q2's actual logger name
        "daphne": {"level": "WARNING"},
    },
}

"""CompanionHub settings: one module, every value from the environment.

Three situations, chosen by what is configured:

* nothing set: the embedded default. SQLite under ``var/``, locmem cache,
  in-memory channel layer, a Celery worker inside the server process on the
  in-memory broker, offline demo back ends, DEBUG on. No service to install.
* ``DATABASE_URL`` / ``REDIS_URL`` set: PostgreSQL (psycopg 3 with its pool)
  and Redis for the cache, the channel layer and the Celery broker.
* ``DEBUG=False``: production. Every required variable is checked before
  anything is served, and all problems are reported at once.

The README's configuration table documents every variable read here.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.utils.csp import CSP

from companionhub import db_pool, services_for_tests
from companionhub.env_check import format_problems, production_problems
from companionhub.logconfig import build_logging

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A test run uses the services named for it, never the ones .env names for the site
# (companionhub/services_for_tests.py).
if services_for_tests.running_under_pytest():
    services_for_tests.point_at_test_services(os.environ)
environ.Env.read_env(os.environ.get("ENV_FILE", BASE_DIR / ".env"))

DEBUG = env.bool("DEBUG", default=True)

if not DEBUG:
    _problems = production_problems(os.environ)
    if _problems:
        raise SystemExit(format_problems(_problems))

# A development-only key: production refuses to start without its own (see above).
SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-never-use-in-production-0123456789")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

REDIS_URL = env.str("REDIS_URL", default="")
EMBEDDED = not REDIS_URL

INSTALLED_APPS = [
    "daphne",  # first: its runserver serves HTTP and websockets through ASGI
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_structlog",
    "companionhub",
    "django_ratelimit",
    "accounts",
    "lorebooks",
    "companions",
    "memories",
    "chat",
    "groups",
    "media",
    "portability",
    "ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "companionhub.uploads.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After sessions (it may read them), before CommonMiddleware (Django's documented order).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "companionhub.dbunavailable.DatabaseUnavailableMiddleware",  # a lost database is a 503
    # A signed-in user's saved language; after the outage check, which loads the user first.
    "accounts.language.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "companionhub.ratelimits.RateLimitMiddleware",
]

ROOT_URLCONF = "companionhub.urls"
ASGI_APPLICATION = "companionhub.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
                "companionhub.context_processors.site",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections, not Django
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=1),
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=24),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        # Test a connection before handing it out, so a PostgreSQL restart
        # costs in-flight requests only, never the process; the first broken
        # one clears out all the others (companionhub/db_pool.py).
        "check": db_pool.check_connection,
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # The embedded worker writes from threads: take the write lock up front
        # and wait for it rather than failing with "database is locked".
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests run a Celery worker in threads: an in-memory shared-cache database
    # has table locks that fail at once instead of waiting, so test on a file.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
# Threads per web process for the websocket consumers' database work (companionhub/db_async.py).
# Each borrows a connection from the pool only for a call, so the pool must have more than this
# (HTTP views and Channels' own session lookups take theirs from it too).
_DB_POOL_MAX = DATABASES["default"].get("OPTIONS", {}).get("pool", {}).get("max_size")
WS_DB_THREADS = env.int("WS_DB_THREADS", default=max(2, _DB_POOL_MAX // 2) if _DB_POOL_MAX else 4)
if WS_DB_THREADS < 1 or (_DB_POOL_MAX and WS_DB_THREADS >= _DB_POOL_MAX):
    raise SystemExit(
        f"WS_DB_THREADS must be at least 1 and below DATABASE_POOL_MAX_SIZE ({_DB_POOL_MAX}), "
        f"not {WS_DB_THREADS}."
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, channel layer ------------------------------------------------------

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "companionhub.redis_cache.SharedClientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "ch",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 reads with a 5 s socket timeout by default, which
                # aborts the layer's blocking BZPOPMIN and kills every socket
                # idle for 5 s (close 1011). The wait is meant to block.
                # redis-py 8 also caps a pool at 100 connections and fails at once
                # past that (no waiting): 100+ sockets connecting together each
                # borrow one for group_add, and the unlucky ones got HTTP 500.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": None,
                        "max_connections": env.int("CHANNEL_LAYER_MAX_CONNECTIONS", default=1000),
                    }
                ],
                "prefix": "ch-asgi",
                # channels-redis drops group messages silently over capacity
                # (default 100); token batches must not be what gets dropped.
                "capacity": env.int("CHANNEL_LAYER_CAPACITY", default=1000),
                "expiry": 60,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "companionhub.channel_layer.ThreadSafeInMemoryChannelLayer",
            "CONFIG": {"capacity": env.int("CHANNEL_LAYER_CAPACITY", default=1000)},
        }
    }

# Page caching (companionhub/pagecache.py): the anonymous landing page, and each
# user's companion list and gallery data, invalidated whenever the user changes them.
CACHE_PAGES = env.bool("CACHE_PAGES", default=True)
CACHE_LANDING_SECONDS = env.int("CACHE_LANDING_SECONDS", default=300)
CACHE_USER_PAGES_SECONDS = env.int("CACHE_USER_PAGES_SECONDS", default=60)

# --- Celery --------------------------------------------------------------------

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_IGNORE_RESULT = True  # the database holds run state; tasks opt in
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = max(CELERY_TASK_TIME_LIMIT - 15, 1)
# Building an account export (portability/) may take minutes: its own hard time limit.
EXPORT_TIME_LIMIT = env.int("EXPORT_TIME_LIMIT", default=1800)
# Several sites can share one Redis if each has its own queue names.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_CHAT_QUEUE", default="chat")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# kombu's Redis transport with a fix that keeps a worker up through a Redis restart
# (companionhub/broker_transport.py says what it works around).
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "companionhub.broker_transport:Transport"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A task whose worker died is re-delivered after this long: keep it well
    # above the longest hard time limit so a slow task is never run twice.
    "visibility_timeout": max(3600, CELERY_TASK_TIME_LIMIT * 4, EXPORT_TIME_LIMIT * 2),
}
if not REDIS_URL:
    # The memory transport polls once a second by default; 5 ms keeps chained
    # steps from waiting on the poll.
    CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"] = 0.005
EMBEDDED_WORKER = env.bool("EMBEDDED_WORKER", default=EMBEDDED)
EMBEDDED_WORKER_CONCURRENCY = env.int("EMBEDDED_WORKER_CONCURRENCY", default=20)
# A worker on a real broker pings itself through it this often, and exits after this many
# unanswered pings in a row so its supervisor restarts it (companionhub/worker_watchdog.py).
WORKER_WATCHDOG_SECONDS = env.float("WORKER_WATCHDOG_SECONDS", default=30.0)
WORKER_WATCHDOG_FAILURES = env.int("WORKER_WATCHDOG_FAILURES", default=3)
# Pipeline steps of one worker process that run Python at once (companionhub/step_slots.py):
# a step waiting on the network gives its slot back, so replies still stream by the hundred.
WORKER_STEP_SLOTS = env.int("WORKER_STEP_SLOTS", default=2)
if WORKER_STEP_SLOTS < 1:
    raise SystemExit(f"WORKER_STEP_SLOTS must be at least 1, not {WORKER_STEP_SLOTS}.")
# How often a worker's threads are asked to hand the GIL on (Python's default is 5 ms): the
# streaming loop thread waits at most about this long for it after each socket call.
WORKER_SWITCH_INTERVAL_MS = env.float("WORKER_SWITCH_INTERVAL_MS", default=0.5)
if not 0.05 <= WORKER_SWITCH_INTERVAL_MS <= 100:
    raise SystemExit(
        f"WORKER_SWITCH_INTERVAL_MS must be between 0.05 and 100, not {WORKER_SWITCH_INTERVAL_MS}."
    )
# Celery beat in a thread of the same process, so the periodic work (stuck runs, expired
# rate-limit records, the orphan report) happens with no service to install either.
EMBEDDED_BEAT = env.bool("EMBEDDED_BEAT", default=EMBEDDED_WORKER)

# --- Accounts and sessions -----------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.UsernameOrEmailBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 8},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"
SESSION_COOKIE_AGE = 60 * 60 * 24 * 30
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# --- Security headers ----------------------------------------------------------

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:", "blob:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    LANGUAGE_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    if env.bool("BEHIND_TLS_PROXY", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

SILENCED_SYSTEM_CHECKS: list[str] = [
    # django-ratelimit lists only django-redis and memcached. Django's own
    # RedisCache increments atomically (INCR), which is all it needs.
    "django_ratelimit.W001",
]
if not REDIS_URL:
    # The embedded default is one process: its locmem cache is shared by every
    # thread that serves requests, and its incr() holds a lock.
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.E003")
if not DEBUG and not SECURE_HSTS_PRELOAD:
    # Preloading a domain into browsers is a one-way commitment the operator
    # makes deliberately (SECURE_HSTS_PRELOAD=True); README explains it.
    SILENCED_SYSTEM_CHECKS.append("security.W021")

# --- Static files and uploads --------------------------------------------------

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start otherwise
# `manage.py backup` writes its archives here unless given --output-dir (docs/operations.md).
BACKUP_DIR = Path(env.str("BACKUP_DIR", default=str(VAR_DIR / "backups")))
MEDIA_URL = "/media/"  # served by media.views to the owner only, never by a public route
# Production: let nginx stream files from an `internal` location (docs/security.md).
MEDIA_X_ACCEL_REDIRECT = env.bool("MEDIA_X_ACCEL_REDIRECT", default=False)
MEDIA_X_ACCEL_PREFIX = env.str("MEDIA_X_ACCEL_PREFIX", default="/protected-media/")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "companionhub.staticfiles.ManifestStaticFilesStorage"  # hashed, gzipped, imports rewritten
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_MAX_AGE = 31_536_000 if not DEBUG else 0
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
# Images: byte limit checked before decoding; pixel cap checked from the header,
# before decoding (a 16 MP picture takes about 64 MB decoded; a 12 MP phone
# photo fits, generated pictures are about 1 MP).
IMAGE_MAX_BYTES = env.int("IMAGE_MAX_BYTES", default=10 * 1024 * 1024)
IMAGE_MAX_PIXELS = env.int("IMAGE_MAX_PIXELS", default=16_000_000)
# Character cards: bytes of JSON an import keeps beyond the fields it uses (extensions,
# unknown fields, the lorebook). Every reply reads them; what does not fit is left out
# and the user is told (companions/cards/importing.py).
CARD_EXTRAS_MAX_BYTES = env.int("CARD_EXTRAS_MAX_BYTES", default=256 * 1024)
# Lorebooks (lorebooks/formats.py): the largest World Info / character_book file an import
# reads (checked before parsing), the most entries a book may have, and per entry the longest
# content, the most keys (primary and secondary each) and the longest key. Over any of them the
# file is refused with the entry named; nothing is half-imported.
LOREBOOK_IMPORT_MAX_BYTES = env.int("LOREBOOK_IMPORT_MAX_BYTES", default=5 * 1024 * 1024)
LOREBOOK_MAX_ENTRIES = env.int("LOREBOOK_MAX_ENTRIES", default=5000)
LOREBOOK_ENTRY_MAX_CHARS = env.int("LOREBOOK_ENTRY_MAX_CHARS", default=50_000)
LOREBOOK_MAX_KEYS = env.int("LOREBOOK_MAX_KEYS", default=100)
LOREBOOK_KEY_MAX_CHARS = env.int("LOREBOOK_KEY_MAX_CHARS", default=500)

# --- Chat ---------------------------------------------------------------------

CHAT_MAX_MESSAGE_CHARS = env.int("CHAT_MAX_MESSAGE_CHARS", default=4000)
# Chat imports (chat/transcripts): the largest file, the most messages, and the longest text
# of one message or version in it (replies can be longer than what a user may type; prompts
# fit messages into the token budget anyway). Anything over is refused, with its line.
CHAT_IMPORT_MAX_BYTES = env.int("CHAT_IMPORT_MAX_BYTES", default=20 * 1024 * 1024)
CHAT_IMPORT_MAX_MESSAGES = env.int("CHAT_IMPORT_MAX_MESSAGES", default=20_000)
CHAT_IMPORT_MAX_MESSAGE_CHARS = env.int("CHAT_IMPORT_MAX_MESSAGE_CHARS", default=32_000)
# The prompt's budget in tokens (chat/budget.py has the priority order). The context length
# is the connection's; this one is for the demo back end, which has no row.
CHAT_DEFAULT_CONTEXT_TOKENS = env.int("CHAT_DEFAULT_CONTEXT_TOKENS", default=8192)
# Kept free besides the reply's own reserve: a flat margin, and a share of the context more
# when the counts are estimates rather than the server's tokenizer.
CHAT_CONTEXT_SAFETY_TOKENS = env.int("CHAT_CONTEXT_SAFETY_TOKENS", default=64)
CHAT_ESTIMATE_SAFETY_SHARE = env.float("CHAT_ESTIMATE_SAFETY_SHARE", default=0.05)
# Shares of what is left, when each part's turn comes (lore is also capped below).
CHAT_BUDGET_PINNED_SHARE = env.float("CHAT_BUDGET_PINNED_SHARE", default=0.2)
CHAT_BUDGET_LORE_SHARE = env.float("CHAT_BUDGET_LORE_SHARE", default=0.25)
CHAT_BUDGET_MEMORY_SHARE = env.float("CHAT_BUDGET_MEMORY_SHARE", default=0.15)
CHAT_BUDGET_SUMMARY_SHARE = env.float("CHAT_BUDGET_SUMMARY_SHARE", default=0.25)
CHAT_BUDGET_EXAMPLES_SHARE = env.float("CHAT_BUDGET_EXAMPLES_SHARE", default=0.2)
for _name in (
    "CHAT_ESTIMATE_SAFETY_SHARE",
    "CHAT_BUDGET_PINNED_SHARE",
    "CHAT_BUDGET_LORE_SHARE",
    "CHAT_BUDGET_MEMORY_SHARE",
    "CHAT_BUDGET_SUMMARY_SHARE",
    "CHAT_BUDGET_EXAMPLES_SHARE",
):
    if not 0.0 <= globals()[_name] <= 1.0:
        raise SystemExit(f"{_name} must be a share between 0 and 1, not {globals()[_name]}.")
# The newest messages read from the database for one prompt (those after the summary); the
# budget decides how many of them go in.
CHAT_HISTORY_FETCH = env.int("CHAT_HISTORY_FETCH", default=200)
CHAT_MEMORY_QUERY_MESSAGES = env.int("CHAT_MEMORY_QUERY_MESSAGES", default=4)  # the retrieval query
CHAT_MEMORY_LIMIT = env.int("CHAT_MEMORY_LIMIT", default=20)  # memories in one prompt at most
CHAT_PROMPT_RECORDS_KEPT = env.int("CHAT_PROMPT_RECORDS_KEPT", default=50)  # per conversation
# Counting tokens (chat/tokens.py): the server's /tokenize where it has one, else an estimate
# learned from the usage the server reports, starting from this ratio.
CHAT_TOKENIZE_ENABLED = env.bool("CHAT_TOKENIZE_ENABLED", default=True)
CHAT_TOKENIZE_TIMEOUT = env.float("CHAT_TOKENIZE_TIMEOUT", default=3.0)  # seconds to read a count
CHAT_TOKENIZE_PROBE_TTL = env.int("CHAT_TOKENIZE_PROBE_TTL", default=86_400)
CHAT_TOKEN_COUNT_CACHE_SIZE = env.int("CHAT_TOKEN_COUNT_CACHE_SIZE", default=20_000)  # per process
CHAT_TOKEN_COUNT_TTL = env.int("CHAT_TOKEN_COUNT_TTL", default=86_400)  # in the shared cache
CHAT_DEFAULT_CHARS_PER_TOKEN = env.float("CHAT_DEFAULT_CHARS_PER_TOKEN", default=3.0)
CHAT_CHARS_PER_TOKEN_LEARN_RATE = env.float("CHAT_CHARS_PER_TOKEN_LEARN_RATE", default=0.2)
CHAT_TOKENS_PER_MESSAGE = env.int("CHAT_TOKENS_PER_MESSAGE", default=6)  # a chat template's wrapping
# Tokens of lorebook text one prompt may carry at most (each book's own token_budget can only
# lower it; uploads must not grow the prompt); 0 turns lorebooks off.
CHAT_LOREBOOK_TOKEN_BUDGET = env.int("CHAT_LOREBOOK_TOKEN_BUDGET", default=1000)
# Executions of the reply step (retries and re-deliveries after a dead worker) before giving up.
CHAT_MAX_RUN_ATTEMPTS = env.int("CHAT_MAX_RUN_ATTEMPTS", default=5)
CHAT_RETRY_BACKOFF_BASE = env.float("CHAT_RETRY_BACKOFF_BASE", default=1.0)  # seconds, doubling per retry
CHAT_RETRY_BACKOFF_CAP = env.float("CHAT_RETRY_BACKOFF_CAP", default=10.0)
CHAT_STUCK_RUN_SECONDS = env.int("CHAT_STUCK_RUN_SECONDS", default=600)
# A running step's lease (chat/leases.py): renewed every third of it; a worker dead this long is noticed.
CHAT_RUN_LEASE_SECONDS = env.int("CHAT_RUN_LEASE_SECONDS", default=15)
# The event relay's log (companionhub/relay.py): a conversation's events kept for sockets that
# reconnect or fall behind, about this many per conversation, for this long after the last one.
CHAT_RELAY_PREFIX = env.str("CHAT_RELAY_PREFIX", default="ch-relay")
CHAT_RELAY_LOG_LENGTH = env.int("CHAT_RELAY_LOG_LENGTH", default=2000)
CHAT_RELAY_LOG_SECONDS = env.int("CHAT_RELAY_LOG_SECONDS", default=3600)
# Tokens a user may spend per calendar month (UTC) before new replies are refused;
# 0 = unlimited. Moderators can set a user's own limit in the admin (Usage per user).
USAGE_MONTHLY_TOKEN_QUOTA = env.int("USAGE_MONTHLY_TOKEN_QUOTA", default=0)
# The queue and priority of each chat task are declared with its step (chat/steps.py): Celery
# asks this router, imported when the first task is sent, so settings import no app.
# An account export takes minutes for a large account: a queue (and worker) of its own.
EXPORTS_QUEUE = "exports"
# Memory work (embedding a memory the user wrote, the memory step) never waits behind replies.
MEMORY_QUEUE = "memory"
CELERY_TASK_ROUTES = (
    "chat.steps.route_task",
    {
        "portability.build_export": {"queue": EXPORTS_QUEUE},
        "memories.embed_memory": {"queue": MEMORY_QUEUE},
    },
)
CELERY_BEAT_SCHEDULE = {
    "reconcile-stuck-runs": {"task": "chat.reconcile_stuck_runs", "schedule": 60.0},
    # Runs whose worker died mid-step (chat/leases.py): ended within seconds, not minutes.
    "reconcile-lost-runs": {"task": "chat.reconcile_lost_runs", "schedule": 5.0},
    "delete-expired-rate-limits": {"task": "accounts.delete_expired_rate_limits", "schedule": 300.0},
    # Reports only (a log line with the count); `manage.py media_orphans --delete` removes them.
    "report-orphan-images": {"task": "media.report_orphans", "schedule": 3600.0},
    "delete-expired-exports": {"task": "portability.delete_expired_exports", "schedule": 600.0},
}
# Long-term memories (memories/): at most this many per companion; past it the oldest extracted
# memories nobody pinned or edited go first.
MEMORIES_MAX_PER_COMPANION = env.int("MEMORIES_MAX_PER_COMPANION", default=20_000)
# Account exports (portability/): how long a ready export can be downloaded before it is deleted.
EXPORT_TTL_SECONDS = env.int("EXPORT_TTL_SECONDS", default=24 * 3600)

# --- Rate limits ---------------------------------------------------------------
# One table: scope -> "count/period" (django-ratelimit syntax: s, m, h, d with a
# multiplier, e.g. 5/15m). Keys are described in companionhub/ratelimits.py.
RATE_LIMITS = {
    "login": env.str("RATELIMIT_LOGIN", default="5/15m"),
    "register": env.str("RATELIMIT_REGISTER", default="3/24h"),
    "chat_message": env.str("RATELIMIT_CHAT_MESSAGE", default="30/1m"),
    "image": env.str("RATELIMIT_IMAGE", default="10/1h"),
    "companion_create": env.str("RATELIMIT_COMPANION_CREATE", default="10/1h"),
    "settings_change": env.str("RATELIMIT_SETTINGS_CHANGE", default="20/1h"),
    "token_create": env.str("RATELIMIT_TOKEN_CREATE", default="10/1h"),
    "account_export": env.str("RATELIMIT_ACCOUNT_EXPORT", default="5/24h"),
    "memory_change": env.str("RATELIMIT_MEMORY_CHANGE", default="120/1h"),
    "lorebook_change": env.str("RATELIMIT_LOREBOOK_CHANGE", default="300/1h"),
    # Clips of speech (one per sentence) a user may have synthesised; past it replies are text only.
    "voice": env.str("RATELIMIT_VOICE", default="600/1h"),
    "transcribe": env.str("RATELIMIT_TRANSCRIBE", default="60/1h"),
    # Failed logins for one account from any address: slows guessing spread over many IPs.
    "login_account": env.str("RATELIMIT_LOGIN_ACCOUNT", default="10/1h"),
}
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_USE_CACHE = "default"
# Proxies in front of the site that append to X-Forwarded-For (0 = use REMOTE_ADDR only).
TRUSTED_PROXY_HOPS = env.int("TRUSTED_PROXY_HOPS", default=0)
# A bearer token for a Prometheus scraper on /metrics (empty = staff sessions and staff API tokens only).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Open websockets one account may hold at once.
WS_MAX_SOCKETS_PER_USER = env.int("WS_MAX_SOCKETS_PER_USER", default=10)
# The hard cap on one incoming websocket message (bytes): over it Daphne closes the socket with
# 1009. Anything between a consumer's own limit (64 KiB for chat frames) and this cap gets a
# "frame_too_large" error frame and the socket stays open (companionhub/daphne_websockets.py).
WS_MAX_MESSAGE_BYTES = env.int("WS_MAX_MESSAGE_BYTES", default=16 * 1024 * 1024)
# /ws/ping/ takes anyone: open ping sockets per Daphne process, in all and per client address.
WS_PING_MAX_SOCKETS = env.int("WS_PING_MAX_SOCKETS", default=100)
WS_PING_MAX_SOCKETS_PER_ADDRESS = env.int("WS_PING_MAX_SOCKETS_PER_ADDRESS", default=4)
# Seconds an anonymous /healthz answer is reused (per process) before the checks run again.
HEALTHZ_CACHE_SECONDS = env.float("HEALTHZ_CACHE_SECONDS", default=5.0)
# Each back-end connection is probed (one cheap GET) at most once per this many seconds.
HEALTHZ_PROBE_SECONDS = env.float("HEALTHZ_PROBE_SECONDS", default=30.0)

# --- Back ends (LLM and images) ------------------------------------------------

LLM_BASE_URL = env.str("LLM_BASE_URL", default="")
LLM_API_KEY = env.str("LLM_API_KEY", default="")
LLM_MODEL = env.str("LLM_MODEL", default="")
NOVITA_KEY = env.str("NOVITA_KEY", default="")
SD_API_URL = env.str("SD_API_URL", default="")
IMAGE_API_URL = env.str("IMAGE_API_URL", default="")
IMAGE_API_KEY = env.str("IMAGE_API_KEY", default="")
IMAGE_MODEL = env.str("IMAGE_MODEL", default="")
LLM_CONNECT_TIMEOUT = env.float("LLM_CONNECT_TIMEOUT", default=5.0)
LLM_READ_TIMEOUT = env.float("LLM_READ_TIMEOUT", default=60.0)
IMAGE_TIMEOUT = env.float("IMAGE_TIMEOUT", default=180.0)
IMAGE_WIDTH = env.int("IMAGE_WIDTH", default=832)
IMAGE_HEIGHT = env.int("IMAGE_HEIGHT", default=1216)
IMAGE_STEPS = env.int("IMAGE_STEPS", default=28)
IMAGE_CFG_SCALE = env.float("IMAGE_CFG_SCALE", default=7.0)
IMAGE_SAMPLER = env.str("IMAGE_SAMPLER", default="DPM++ 2M")
# Memory work after a finished reply (chat.summaries, chat.memory_steps; queue "memory").
# The model /v1/embeddings is asked for when a connection names none (blank: its chat model).
LLM_EMBEDDING_MODEL = env.str("LLM_EMBEDDING_MODEL", default="")
# Seconds an embeddings call may take before retrieval goes on without it.
EMBEDDINGS_TIMEOUT = env.float("EMBEDDINGS_TIMEOUT", default=10.0)
# Seconds a server that answered "no embeddings here" (404, 501, ...) is not asked again.
EMBEDDINGS_UNSUPPORTED_SECONDS = env.int("EMBEDDINGS_UNSUPPORTED_SECONDS", default=300)
# The rolling summary of a conversation's older messages, and the facts the companion remembers.
MEMORY_SUMMARY_ENABLED = env.bool("MEMORY_SUMMARY_ENABLED", default=True)
MEMORY_EXTRACTION_ENABLED = env.bool("MEMORY_EXTRACTION_ENABLED", default=True)
# Tokens one summary may take (the LLM's max_tokens for it).
SUMMARY_MAX_TOKENS = env.int("SUMMARY_MAX_TOKENS", default=400)
# Tokens of messages one summarisation call reads; a pass makes at most SUMMARY_MAX_CHUNKS calls.
SUMMARY_CHUNK_TOKENS = env.int("SUMMARY_CHUNK_TOKENS", default=3000)
SUMMARY_MAX_CHUNKS = env.int("SUMMARY_MAX_CHUNKS", default=4)
# Facts the memory step keeps from one reply.
MEMORY_FACTS_PER_TURN = env.int("MEMORY_FACTS_PER_TURN", default=5)
# Text to speech (chat.speech): an OpenAI-compatible ``POST {TTS_BASE_URL}/v1/audio/speech``
# (OpenAI, Kokoro-FastAPI, openedai-speech, LocalAI, ``make local-voice``). Unset: no voice.
TTS_BASE_URL = env.str("TTS_BASE_URL", default="")
TTS_API_KEY = env.str("TTS_API_KEY", default="")
TTS_MODEL = env.str("TTS_MODEL", default="tts-1")
TTS_VOICE = env.str("TTS_VOICE", default="alloy")  # a companion without a voice of its own
# "wav" answers fastest (no encoder in the way) and its length is exact; "mp3" / "opus" are smaller.
TTS_FORMAT = env.str("TTS_FORMAT", default="wav")
if TTS_FORMAT not in ("wav", "mp3", "opus"):
    raise SystemExit(f"TTS_FORMAT must be wav, mp3 or opus, not {TTS_FORMAT!r}.")
# Seconds one sentence may take to synthesise before the reply goes on as text only.
TTS_TIMEOUT = env.float("TTS_TIMEOUT", default=20.0)
# Characters one clip (one sentence, or a run-on cut short) may hold, and bytes its audio may take.
TTS_MAX_CHARS = env.int("TTS_MAX_CHARS", default=400)
TTS_MAX_AUDIO_BYTES = env.int("TTS_MAX_AUDIO_BYTES", default=8 * 1024 * 1024)
# A sentence shorter than this is spoken with the next one ("Oh! Hello there." is one clip).
TTS_MIN_SENTENCE_CHARS = env.int("TTS_MIN_SENTENCE_CHARS", default=12)
# Seconds between words of the offline demo LLM (0 streams at once).
DEMO_LLM_TOKEN_DELAY = env.float("DEMO_LLM_TOKEN_DELAY", default=0.04)
# Without an LLM back end (no LLM_BASE_URL / NOVITA_KEY, no enabled LLM connection) web and worker
# processes refuse to start (chat.startup) unless this says the offline demo is meant. Read once here:
# on by default in development, off in production. (Not settings.DEBUG at run time: test runners flip it.)
ALLOW_DEMO_BACKENDS = env.bool("ALLOW_DEMO_BACKENDS", default=DEBUG)
# Circuit breaker per back end: open after N straight failures, one trial after S seconds,
# closed again after M successes.
CIRCUIT_FAILURE_THRESHOLD = env.int("CIRCUIT_FAILURE_THRESHOLD", default=5)
CIRCUIT_RESET_SECONDS = env.float("CIRCUIT_RESET_SECONDS", default=60.0)
CIRCUIT_CLOSE_AFTER = env.int("CIRCUIT_CLOSE_AFTER", default=2)

# --- Voice: speech to text (chat.transcription, chat.listening) ---------------

# An OpenAI-compatible transcription server (OpenAI, faster-whisper-server / Speaches, LocalAI):
# POST {STT_BASE_URL}/v1/audio/transcriptions; STT_PROVIDER=whisper-cpp for whisper.cpp's
# server (POST {STT_BASE_URL}/inference). Seeds the environment's audio connection.
STT_BASE_URL = env.str("STT_BASE_URL", default="")
STT_API_KEY = env.str("STT_API_KEY", default="")
STT_MODEL = env.str("STT_MODEL", default="whisper-1")
STT_PROVIDER = env.str("STT_PROVIDER", default="openai-audio")
if STT_PROVIDER not in ("openai-audio", "whisper-cpp"):
    raise SystemExit(f"STT_PROVIDER must be openai-audio or whisper-cpp, not {STT_PROVIDER!r}.")
# Seconds a transcription may take (the connection's read timeout when seeded from here).
STT_TIMEOUT = env.float("STT_TIMEOUT", default=60.0)
# A recording posted to /chat/transcribe/: at most this many bytes and seconds.
VOICE_UPLOAD_MAX_BYTES = env.int("VOICE_UPLOAD_MAX_BYTES", default=10 * 1024 * 1024)
VOICE_UPLOAD_MAX_SECONDS = env.int("VOICE_UPLOAD_MAX_SECONDS", default=120)

# --- Internationalisation ------------------------------------------------------

# English is the source language; German and Spanish catalogues live in locale/ and are
# compiled by `make install`. Each language is named in itself for the switcher.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["companionhub.formats"]  # English dates day-first, as before
# A signed-in user's saved language wins (accounts.language.UserLanguageMiddleware), then this
# cookie (the switcher sets it), then the browser's Accept-Language (LocaleMiddleware).
LANGUAGE_COOKIE_NAME = "ch_language"
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_AGE = 60 * 60 * 24 * 365
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Logging -------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="console" if DEBUG else "json")
LOGGING = build_logging(fmt=LOG_FORMAT, level=LOG_LEVEL)
DJANGO_STRUCTLOG_CELERY_ENABLED = True
# Off: its own lookup (django-ipware) believes the leftmost X-Forwarded-For, which
# the client writes. The request log binds ``ip`` from ratelimits.request_ip
# instead (companionhub/logconfig.py), the address rate limits use.
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False

# Tests set this so a missing PostgreSQL/Redis fails the run instead of skipping.
REQUIRE_SERVICES = env.bool("REQUIRE_SERVICES", default=False)

"""Validation of the production environment.

Settings call :func:`production_problems` when ``DEBUG`` is off and refuse to
start with one message that lists *every* problem, so an operator fixes the
whole ``.env`` in one go instead of one variable per restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlparse

# Values that are obviously placeholders and must never reach production.
INSECURE_SECRET_MARKERS = ("django-insecure", "change-me", "changeme", "dev-only")
MIN_SECRET_KEY_LENGTH = 50
# /metrics opens to whoever holds it: it must not be guessable.
MIN_METRICS_TOKEN_LENGTH = 32


def _check_secret_key(value: str) -> str | None:
    if not value:
        return "SECRET_KEY is missing: set a random string of at least 50 characters."
    if len(value) < MIN_SECRET_KEY_LENGTH or len(set(value)) < 5:
        return "SECRET_KEY is too weak: use at least 50 random characters."
    if any(marker in value.lower() for marker in INSECURE_SECRET_MARKERS):
        return "SECRET_KEY is a placeholder value: generate a new random one."
    return None


def _check_allowed_hosts(value: str) -> str | None:
    hosts = [h.strip() for h in value.split(",") if h.strip()]
    if not hosts:
        return "ALLOWED_HOSTS is missing: a comma-separated list of the site's host names."
    if "*" in hosts:
        return "ALLOWED_HOSTS must not contain '*' in production."
    return None


def _check_url(name: str, value: str, schemes: tuple[str, ...]) -> str | None:
    if not value:
        return f"{name} is missing: expected a URL with scheme {' or '.join(schemes)}."
    parsed = urlparse(value)
    if parsed.scheme not in schemes or (not parsed.hostname and not parsed.path):
        return f"{name} is invalid: expected a URL with scheme {' or '.join(schemes)}."
    return None


def production_problems(environ: Mapping[str, str]) -> list[str]:
    """Return one human-readable line per missing or invalid production variable."""
    problems = [
        _check_secret_key(environ.get("SECRET_KEY", "")),
        _check_allowed_hosts(environ.get("ALLOWED_HOSTS", "")),
        _check_url(
            "DATABASE_URL",
            environ.get("DATABASE_URL", ""),
            ("postgres", "postgresql", "pgsql"),
        ),
        _check_url("REDIS_URL", environ.get("REDIS_URL", ""), ("redis", "rediss")),
    ]
    metrics_token = environ.get("METRICS_TOKEN", "")
    if metrics_token and len(metrics_token) < MIN_METRICS_TOKEN_LENGTH:
        problems.append(
            f"METRICS_TOKEN is too short: use at least {MIN_METRICS_TOKEN_LENGTH} random characters, "
            "or leave it empty."
        )
    origins = environ.get("CSRF_TRUSTED_ORIGINS", "")
    for origin in filter(None, (o.strip() for o in origins.split(","))):
        if urlparse(origin).scheme not in ("http", "https"):
            problems.append(
                f"CSRF_TRUSTED_ORIGINS entry {origin!r} is invalid: "
                "each entry needs a scheme, e.g. https://chat.example.com."
            )
    return [p for p in problems if p]


TRUE_VALUES = ("1", "true", "yes", "on")
DEMO_BACKEND_PROBLEM = (
    "No LLM back end: set LLM_BASE_URL (with LLM_MODEL and LLM_API_KEY) or NOVITA_KEY, "
    "or add an enabled LLM connection in the admin. To run the offline demo back ends "
    "in production on purpose, set ALLOW_DEMO_BACKENDS=True."
)


def demo_backend_problem(environ: Mapping[str, str], *, enabled_llm_connections: int) -> str | None:
    """Production must not fall back to the canned demo LLM by accident.

    The environment (``LLM_BASE_URL`` or ``NOVITA_KEY``) or an enabled LLM
    connection row (counted by the caller, which may use the database) is
    enough; ``ALLOW_DEMO_BACKENDS=True`` says the demo is meant. Called at
    ASGI and worker start, not from settings: the rows are not readable yet.
    """
    if str(environ.get("ALLOW_DEMO_BACKENDS", "")).strip().lower() in TRUE_VALUES:
        return None
    if environ.get("LLM_BASE_URL") or environ.get("NOVITA_KEY") or enabled_llm_connections > 0:
        return None
    return DEMO_BACKEND_PROBLEM


def format_problems(problems: list[str]) -> str:
    lines = "\n".join(f"  - {p}" for p in problems)
    return (
        "CompanionHub cannot start in production (DEBUG=False); "
        f"fix these environment variables:\n{lines}\n"
        "See .env.example and the configuration table in README.md."
    )

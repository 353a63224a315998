"""Running PostgreSQL's client programs (pg_dump, pg_restore) against a configured database.

The connection comes from Django's settings and reaches the program through
libpq's environment variables: the password never appears on a command line
(where ``ps`` would show it), and inherited ``PG*`` variables cannot point the
program at a different server than Django uses. ``--no-password`` makes a
missing password an error instead of a prompt nobody can answer.
"""

from __future__ import annotations

import os
import shutil
import subprocess

LIBPQ_SETTINGS = {
    "HOST": "PGHOST",
    "PORT": "PGPORT",
    "USER": "PGUSER",
    "PASSWORD": "PGPASSWORD",
    "NAME": "PGDATABASE",
}
LIBPQ_OPTIONS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
}
# Waiting this long for a table lock means something still uses the database
# (a site not stopped, a transaction left open): fail and say so, never hang.
LOCK_TIMEOUT = "60s"


class PostgresToolError(Exception):
    """A client program is missing or failed; the message says which and why."""


def libpq_env(settings_dict: dict, *, lock_timeout: str | None = None) -> dict[str, str]:
    """The process environment for a client program: ours, minus inherited PG*, plus the connection."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    for key, variable in LIBPQ_SETTINGS.items():
        if settings_dict.get(key):
            env[variable] = str(settings_dict[key])
    for key, variable in LIBPQ_OPTIONS.items():
        value = (settings_dict.get("OPTIONS") or {}).get(key)
        if value:
            env[variable] = str(value)
    if lock_timeout:
        env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} -c lock_timeout={lock_timeout}".strip()
    return env


def run_tool(program: str, args: list[str], settings_dict: dict) -> None:
    """Run ``program`` with ``args`` against the database of ``settings_dict``; never reads stdin.

    Every session it opens gives up on a lock after ``LOCK_TIMEOUT``.
    """
    path = shutil.which(program)
    if path is None:
        raise PostgresToolError(
            f"{program} was not found on PATH: install the PostgreSQL client programs "
            "(Debian: apt-get install postgresql-client), of the server's major version or newer."
        )
    result = subprocess.run(  # noqa: S603  (fixed program, arguments built here, no shell)
        [path, "--no-password", *args],
        env=libpq_env(settings_dict, lock_timeout=LOCK_TIMEOUT),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PostgresToolError(f"{program} failed (exit {result.returncode}): {result.stderr.strip()}")

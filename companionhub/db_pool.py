"""The database pool's connection check.

psycopg's pool tests a connection before lending it (``check``). When the
test fails it tries the next idle connection, but it sleeps between tries
with a backoff (0, 1, 2, 4 ... seconds). After a PostgreSQL restart every
idle connection is broken, so a pool holding four of them spends the whole
``DATABASE_POOL_TIMEOUT`` discarding them one by one and the first request
after the restart gets a 503 although the database is back.

One broken connection means the server went away under all of them: so the
first failure tests every idle connection at once (``pool.check()``, which
throws the broken ones away and opens replacements), and the pool's next try
finds a working connection or a fresh one instead of the next dead one.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import ConnectionPool


def check_connection(conn: Any) -> None:
    """Raise if ``conn`` is broken, after clearing the pool's other broken connections."""
    try:
        ConnectionPool.check_connection(conn)
    except Exception:
        # Imported here: settings imports this module before Django is set up.
        from django.db import DEFAULT_DB_ALIAS, connections

        pool = getattr(connections[DEFAULT_DB_ALIAS], "pool", None)
        if pool is not None:
            # Tests the idle connections with the pool's own static check (not
            # this function), so there is no recursion.
            pool.check()
        raise

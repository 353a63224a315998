"""SQLite -> PostgreSQL: every row of every model, primary keys kept, checked table by table.

For an embedded-default install that has outgrown SQLite. The SQLite file is
opened read-only under a database alias added at run time; the PostgreSQL
target is a configured alias (``default``: ``DATABASE_URL``), which must hold
no rows. The target is migrated, the rows ``migrate`` wrote by itself (content
types, permissions) are replaced by the source's so their keys match, and
every model's rows are copied in dependency order in batches, as raw inserts
(``auto_now`` fields and signals do not touch them). Sequences are then reset
past the copied keys.

Before the transaction commits, every table's row count and a sha256 over its
rows (ordered by primary key, each row serialized canonically) are compared
between source and target; any difference rolls the whole copy back.
Pictures stay where they are (same MEDIA_ROOT); every file a row names is
checked to exist.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote as url_quote
from uuid import UUID

from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import DatabaseError, connections, models, transaction
from django.db.models.functions import Collate

from ops import dbstate

SOURCE_ALIAS = "sqlite_source"
BATCH = 500
# Byte order in both, so text keys sort the same on each side.
BINARY_COLLATION = {"sqlite": "BINARY", "postgresql": "C"}


class MoveRefused(Exception):
    """The move did not start, or stopped before copying; the target holds no rows."""


@dataclass(frozen=True)
class TableCheck:
    label: str
    source_rows: int
    target_rows: int
    source_sha256: str
    target_sha256: str

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.source_sha256 == self.target_sha256


@dataclass
class MoveReport:
    tables: list[TableCheck] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)

    @property
    def mismatched(self) -> list[TableCheck]:
        return [check for check in self.tables if not check.ok]

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.missing_files


class MoveMismatch(Exception):
    """Source and target differed after the copy; it was rolled back. ``report`` says where."""

    def __init__(self, report: MoveReport) -> None:
        super().__init__(", ".join(check.label for check in report.mismatched))
        self.report = report


def sqlite_settings(path: Path, *, read_only: bool = True) -> dict:
    """A complete DATABASES entry for a SQLite file (Django opens SQLite names as URIs)."""
    name = f"file:{url_quote(str(Path(path).resolve()))}{'?mode=ro' if read_only else ''}"
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        "USER": "",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
        "OPTIONS": {"timeout": 20},
        "ATOMIC_REQUESTS": False,
        "AUTOCOMMIT": True,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "TIME_ZONE": None,
        "TEST": {"CHARSET": None, "COLLATION": None, "MIGRATE": True, "MIRROR": None, "NAME": None},
    }


@contextmanager
def database_alias(alias: str, settings_dict: dict) -> Iterator[str]:
    """``alias`` usable through ``connections`` for the duration of the block."""
    if alias in connections.settings:
        raise MoveRefused(f"the database alias {alias!r} is already configured")
    connections.settings[alias] = settings_dict
    try:
        yield alias
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]


def move_sqlite_to_postgres(*, source: Path, target_alias: str = "default") -> MoveReport:
    """Copy every row from the SQLite file ``source`` into the empty PostgreSQL ``target_alias``.

    Raises ``MoveRefused`` before anything is copied, and ``MoveMismatch`` (after
    rolling back) when a table's count or checksum differs. The returned report
    lists the files rows name that are missing from MEDIA_ROOT.
    """
    source = Path(source)
    target = connections[target_alias]
    if target.vendor != "postgresql":
        raise MoveRefused(
            f"the target must be PostgreSQL, and DATABASE_URL points at {target.vendor}: "
            "set DATABASE_URL=postgres://… to the new, empty database"
        )
    if not source.is_file():
        raise MoveRefused(f"there is no SQLite database at {source}")
    with database_alias(SOURCE_ALIAS, sqlite_settings(source)):
        try:
            source_applied = _applied(SOURCE_ALIAS)
            occupied = dbstate.occupied_tables(dbstate.database_counts(target_alias))
        except DatabaseError as exc:
            raise MoveRefused(f"cannot read a database: {exc}") from exc
        if not source_applied:
            raise MoveRefused(f"{source} has no applied migrations: it is not a CompanionHub database")
        if occupied:
            listed = ", ".join(f"{label} ({n} rows)" for label, n in occupied.items())
            raise MoveRefused(
                f"the target database {target.settings_dict['NAME']} is not empty: {listed}. "
                "Move into a new, empty database."
            )
        call_command("migrate", database=target_alias, interactive=False, verbosity=0)
        _check_same_migrations(source, source_applied, _applied(target_alias))
        ordered = models_in_dependency_order(dbstate.installed_models())
        report = MoveReport()
        with transaction.atomic(using=target_alias):
            _empty(target_alias, ordered)  # what migrate wrote, replaced by the source's rows
            for model in ordered:
                _copy(model, SOURCE_ALIAS, target_alias)
            with target.cursor() as cursor:
                for sql in target.ops.sequence_reset_sql(no_style(), ordered):
                    cursor.execute(sql)
            report.tables = [compare_table(model, SOURCE_ALIAS, target_alias) for model in ordered]
            if report.mismatched:
                raise MoveMismatch(report)
        report.missing_files = missing_media_files(target_alias)
    return report


def models_in_dependency_order(models_: list[type[models.Model]]) -> list[type[models.Model]]:
    """Referenced models before the models that point at them; a cycle keeps its original order
    (PostgreSQL checks Django's foreign keys at commit, so a cycle inside one transaction is fine)."""
    remaining = list(models_)
    ordered: list[type[models.Model]] = []
    while remaining:
        placed = set(ordered)
        ready = [
            m
            for m in remaining
            if all(
                dep in placed or dep is m or dep not in remaining
                for dep in (f.related_model for f in m._meta.concrete_fields if f.is_relation)
            )
        ]
        if not ready:
            ready = remaining[:1]
        for model in ready:
            remaining.remove(model)
            ordered.append(model)
    return ordered


def compare_table(model: type[models.Model], source_alias: str, target_alias: str) -> TableCheck:
    source_rows, source_sha256 = table_digest(model, source_alias)
    target_rows, target_sha256 = table_digest(model, target_alias)
    return TableCheck(model._meta.label_lower, source_rows, target_rows, source_sha256, target_sha256)


def table_digest(model: type[models.Model], alias: str) -> tuple[int, str]:
    """(rows, sha256) over every concrete column of every row, in primary key order."""
    connection = connections[alias]
    pk = model._meta.pk
    order = pk.attname
    if isinstance(pk, (models.CharField, models.TextField)):
        order = Collate(pk.attname, BINARY_COLLATION[connection.vendor])
    columns = [f.attname for f in model._meta.concrete_fields]
    rows = model._base_manager.using(alias).order_by(order).values_list(*columns)
    digest = hashlib.sha256()
    count = 0
    for row in rows.iterator(chunk_size=2000):
        digest.update(canonical_row(row))
        count += 1
    return count, digest.hexdigest()


def canonical_row(row: tuple) -> bytes:
    """One line per row, equal for equal values whatever the database returned them from."""
    return (
        json.dumps(
            row, sort_keys=True, default=_canonical, ensure_ascii=False, separators=(",", ":")
        ).encode()
        + b"\n"
    )


def _canonical(value):
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"timedelta:{value.total_seconds()!r}"
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    raise TypeError(f"no canonical form for {type(value).__name__}")


def missing_media_files(alias: str) -> list[str]:
    """Names in file fields of rows in ``alias`` that the default storage does not have."""
    missing = []
    for model in dbstate.installed_models():
        for file_field in (f for f in model._meta.concrete_fields if isinstance(f, models.FileField)):
            names = model._base_manager.using(alias).exclude(**{file_field.attname: ""})
            for name in names.values_list(file_field.attname, flat=True).iterator():
                if name and not default_storage.exists(name):
                    missing.append(name)
    return sorted(missing)


def _applied(alias: str) -> set[tuple[str, str]]:
    connection = connections[alias]
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
        return dbstate.applied_migrations(cursor, tables)


def _check_same_migrations(source: Path, source_applied: set, target_applied: set) -> None:
    behind = sorted(target_applied - source_applied)
    ahead = sorted(source_applied - target_applied)
    if behind:
        raise MoveRefused(
            f"{source} lacks {len(behind)} migration(s) this code has (e.g. {behind[0][0]}.{behind[0][1]}): "
            f"bring it up to date first with `DATABASE_URL=sqlite:///{source.resolve()} manage.py migrate`, "
            "then move. The target was migrated and holds no rows."
        )
    if ahead:
        raise MoveRefused(
            f"{source} has {len(ahead)} migration(s) this code does not know "
            f"(e.g. {ahead[0][0]}.{ahead[0][1]}): move with the release that wrote it. "
            "The target was migrated and holds no rows."
        )


def _empty(alias: str, models_: list[type[models.Model]]) -> None:
    connection = connections[alias]
    tables = [model._meta.db_table for model in models_]
    with connection.cursor() as cursor:
        for sql in connection.ops.sql_flush(no_style(), tables, allow_cascade=True):
            cursor.execute(sql)


def _copy(model: type[models.Model], source_alias: str, target_alias: str) -> None:
    fields = list(model._meta.concrete_fields)
    manager = model._base_manager
    batch = []
    for obj in manager.using(source_alias).order_by("pk").iterator(chunk_size=BATCH):
        batch.append(obj)
        if len(batch) >= BATCH:
            manager.using(target_alias)._insert(batch, fields=fields, raw=True, using=target_alias)
            batch = []
    if batch:
        manager.using(target_alias)._insert(batch, fields=fields, raw=True, using=target_alias)

"""``JSONMerge``: a JSON column with some top-level keys set, computed by the database in an UPDATE.

A run's bookkeeping (how long each step took, what each analysis found) adds a key
to a JSON object per step. Reading the object and writing it back cost two round
trips and could lose a key another writer added between them; one UPDATE does
neither::

    PipelineRun.objects.filter(pk=run_id).update(step_durations=JSONMerge("step_durations", {step: 12.5}))

Each key given replaces the key's whole value; the others stay. PostgreSQL (``||``)
and SQLite (``json_set``), the two databases the project runs on.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.db.models import F, Func, JSONField

_KEY = re.compile(r"\w+")  # keys are ours (step names, analysis slots), never a user's text


class JSONMerge(Func):
    output_field = JSONField()

    def __init__(self, column: str, values: dict[str, Any]) -> None:
        bad = [key for key in values if not _KEY.fullmatch(key)]
        if bad or not values:
            raise ValueError(f"JSONMerge takes at least one key of word characters, not {bad or values}")
        self.values = values
        super().__init__(F(column))

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, tuple[Any, ...]]:  # type: ignore[override]
        column, params = compiler.compile(self.source_expressions[0])
        return f"(COALESCE({column}, '{{}}'::jsonb) || %s::jsonb)", (*params, json.dumps(self.values))

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, tuple[Any, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        pairs = ", ".join("%s, json(%s)" for _ in self.values)
        args: list[Any] = [*params]
        for key, value in self.values.items():
            args += [f'$."{key}"', json.dumps(value)]
        return f"json_set(COALESCE({column}, '{{}}'), {pairs})", tuple(args)

"""Adding group runs to PipelineRun keeps every existing one-to-one run as it was."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("chat", "0003_message_versions_and_run_mode")]
AFTER = [("chat", "0004_run_group")]


def test_existing_runs_survive_the_group_migration(user):
    companion = make_companion(user)
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(BEFORE)
        old = executor.loader.project_state(BEFORE).apps
        message = old.get_model("chat", "Message").objects.create(
            companion_id=companion.pk, role="user", content="hi"
        )
        run = old.get_model("chat", "PipelineRun").objects.create(
            companion_id=companion.pk, user_message_id=message.pk, status="completed"
        )
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps
        migrated = new.get_model("chat", "PipelineRun").objects.get(pk=run.pk)
        assert migrated.user_message_id == message.pk and migrated.status == "completed"
        assert migrated.group_id is None and migrated.group_reply_id is None
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)  # leave the database as the other tests expect it

"""Where image files live: names, and removal that waits for the commit.

Everything goes through Django's storage API, so an S3-style storage can be
plugged in through ``STORAGES["default"]`` without touching callers.
"""

from __future__ import annotations

import re
import uuid

import structlog
from django.core.files.storage import default_storage
from django.db import transaction

log = structlog.get_logger(__name__)

KIND_FOLDERS = {"header": "headers", "generated": "generated"}


def storage_name(companion_id: int, kind: str) -> str:
    """A fresh, unguessable name; nothing from the input reaches the path."""
    return f"companions/{companion_id}/{KIND_FOLDERS[kind]}/{uuid.uuid4().hex}.jpg"


# The shape of every name ``storage_name`` makes (and older ones in the same folders):
# anything else under MEDIA_ROOT was put there by someone else and is never ours to delete.
SITE_NAME = re.compile(rf"companions/[0-9]+/(?:{'|'.join(KIND_FOLDERS.values())})/[^/]+\.jpg")


def is_site_name(name: str) -> bool:
    return SITE_NAME.fullmatch(name) is not None


def delete_file_on_commit(name: str | None) -> None:
    """Remove the file once the transaction commits (a row with no file has nothing to remove)."""
    if name:
        transaction.on_commit(lambda: _delete_file(name))


def _delete_file(name: str) -> None:
    try:
        default_storage.delete(name)
    except OSError as exc:  # an orphan is reported by the sweep, not a crash here
        log.warning("image_file_delete_failed", name=name, error=str(exc))

"""Export tests: a private MEDIA_ROOT (pictures and zips), fast password hashing."""

from __future__ import annotations

import zipfile

import pytest
from django.core.files.storage import default_storage


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings.MEDIA_ROOT


def open_zip(export) -> zipfile.ZipFile:
    """The export's zip as stored."""
    return zipfile.ZipFile(default_storage.open(export.file, "rb"))

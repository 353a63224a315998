"""Companion test fixtures: a private MEDIA_ROOT for every test, and one companion of ``user``."""

from __future__ import annotations

import pytest

from tests.companions.factories import make_companion


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def companion(user):
    return make_companion(user)

"""Media test fixtures: the companion tests' private MEDIA_ROOT (autouse) and one companion of ``user``."""

from tests.companions.conftest import companion, media_root

__all__ = ["companion", "media_root"]

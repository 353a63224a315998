"""The committed catalogues are complete: every marked string has a German and a Spanish
translation, none empty, none fuzzy, and they compile.

``makemessages`` runs on a copy of the project with the committed ``locale/``, exactly as
``make messages-update`` would: a string marked but missing from the catalogue comes out
untranslated, a changed one comes out fuzzy. CI installs GNU gettext; without it this fails.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.i18n.catalogue import DOMAINS, LANGUAGES, LOCALE_DIR, ROOT, catalogue

# As the Makefile's messages-update target: what is not the site's own code.
NOT_COPIED = {".venv", ".git", "tests", "bench", "var", "node_modules", "screenshots", "staticfiles", "docs"}
IGNORES = ["tests", "bench", "var", "node_modules", "screenshots", "staticfiles"]


def _require_gettext() -> None:
    missing = [tool for tool in ("xgettext", "msgmerge", "msgfmt") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"GNU gettext is missing ({', '.join(missing)}): apt-get install gettext")


def _describe(entry) -> str:
    where = entry.references[0] if entry.references else "?"
    state = "fuzzy" if "fuzzy" in entry.flags else "untranslated"
    return f"  {where}: {state}: {entry.msgid!r}"


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    """The locale/ folder makemessages leaves in a copy of the project with the committed catalogues."""
    _require_gettext()
    copy = tmp_path_factory.mktemp("project") / "site"
    shutil.copytree(
        ROOT,
        copy,
        ignore=lambda folder, names: (
            [n for n in names if Path(folder) == ROOT and n in NOT_COPIED]
            + [n for n in names if n.endswith((".pyc", ".mo")) or n == "__pycache__"]
        ),
    )
    for domain in DOMAINS:
        command = [sys.executable, "manage.py", "makemessages", "-d", domain, "--no-obsolete"]
        command += [arg for language in LANGUAGES for arg in ("-l", language)]
        command += [arg for name in IGNORES for arg in ("--ignore", name)]
        done = subprocess.run(command, cwd=copy, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
    return copy / "locale"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("domain", DOMAINS)
def test_every_marked_string_is_in_the_committed_catalogue(extracted, language, domain):
    fresh = extracted / language / "LC_MESSAGES" / f"{domain}.po"
    committed = LOCALE_DIR / language / "LC_MESSAGES" / f"{domain}.po"
    if not fresh.exists():  # nothing of this domain is marked anywhere
        return
    assert committed.exists(), f"{committed.relative_to(ROOT)} is missing: run make messages-update"
    missing = [entry for entry in catalogue(language, domain, base=extracted) if not entry.is_translated]
    assert not missing, f"{domain}/{language}: marked strings without a translation:\n" + "\n".join(
        map(_describe, missing)
    )


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("domain", DOMAINS)
def test_the_committed_catalogue_has_no_empty_or_fuzzy_entry_and_compiles(language, domain, tmp_path):
    _require_gettext()
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{domain}.po"
    if not path.exists():
        assert domain == "djangojs", f"{path.relative_to(ROOT)} is missing"
        return
    bad = [entry for entry in catalogue(language, domain) if not entry.is_translated]
    assert not bad, "\n".join(map(_describe, bad))
    # --check: placeholders and plural forms agree with the msgid.
    done = subprocess.run(
        ["msgfmt", "--check", "-o", str(tmp_path / "out.mo"), str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr

"""Static files in production: hashed names, gzipped ahead of time, cached for a year."""

import json
import os
import posixpath
import re
import subprocess
import sys

import pytest
from django.test import override_settings

from tests.companionhub.test_env_check import GOOD, ROOT


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("static")
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env = {**base, "ENV_FILE": os.devnull, "DEBUG": "False", "STATIC_ROOT": str(root), **GOOD}
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return root


def test_files_are_hashed_and_precompressed(collected):
    css = [p.name for p in (collected / "css").iterdir()]
    hashed = [n for n in css if n.startswith("app.") and n.endswith(".css") and n != "app.css"]
    assert hashed, css
    assert f"{hashed[0]}.gz" in css
    modules = {p.name for p in (collected / "js" / "chat").iterdir()}
    assert any(n.startswith("main.") and n.endswith(".js.gz") for n in modules)


# A static import or re-export (``import {a} from "./a.js"``, ``import "./a.js"``,
# ``export * from "./a.js"``) or a dynamic ``import("./a.js")``.
MODULE_SPECIFIER = re.compile(
    r"""\b(?:import|export)\b[^;'"`]*?\bfrom\s*["']([^"']+)["']"""
    r"""|\bimport\s*\(?\s*["']([^"']+)["']"""
)
STATIC_SOURCE = ROOT / "static"


def imports_of(path):
    text = re.sub(r"//[^\n]*|/\*.*?\*/", "", path.read_text(), flags=re.S)  # not in comments
    return [a or b for a, b in MODULE_SPECIFIER.findall(text)]


def test_every_module_import_points_at_a_hashed_file(collected):
    """Relative imports between hashed modules are rewritten to the hashed names, so a browser
    loads one deploy's files together and each is cached for a year. Without the rewrite the
    import would still find the unhashed copy, so the test checks the name, not only the file."""
    manifest = json.loads((collected / "staticfiles.json").read_text())["paths"]
    checked = 0
    for source in sorted(STATIC_SOURCE.rglob("*.js")):
        name = source.relative_to(STATIC_SOURCE).as_posix()
        hashed = collected / manifest[name]
        found = imports_of(hashed)
        assert len(found) == len(imports_of(source)), (name, found)
        for specifier in found:
            assert specifier.startswith("./") or specifier.startswith("../"), (name, specifier)
            target = posixpath.normpath(posixpath.join(posixpath.dirname(manifest[name]), specifier))
            assert target in manifest.values(), f"{manifest[name]} imports {specifier}, not a hashed name"
            assert (collected / target).is_file(), f"{manifest[name]} imports {specifier}: no such file"
            checked += 1
    assert checked >= 4, "the chat page's modules import each other"


def test_hashed_files_are_served_compressed_for_a_year(collected, client, settings):
    from whitenoise.middleware import WhiteNoiseMiddleware

    hashed = next(p.name for p in (collected / "css").iterdir() if p.suffix == ".css" and p.name != "app.css")
    with override_settings(
        STATIC_ROOT=collected, WHITENOISE_USE_FINDERS=False, WHITENOISE_MAX_AGE=31_536_000
    ):
        middleware = WhiteNoiseMiddleware(lambda request: None)
        static_file = middleware.files.get(f"/static/css/{hashed}") or middleware.find_file(
            f"/static/css/{hashed}"
        )
        assert static_file is not None
        response = middleware.serve(static_file, client.get("/").wsgi_request)
    assert "max-age=31536000" in response["Cache-Control"]


def test_modules_are_served_as_javascript(collected, client):
    """A browser runs a module script only with a JavaScript MIME type (and nosniff is on)."""
    from whitenoise.middleware import WhiteNoiseMiddleware

    manifest = json.loads((collected / "staticfiles.json").read_text())["paths"]
    url = f"/static/{manifest['js/chat/main.js']}"
    with override_settings(STATIC_ROOT=collected, WHITENOISE_USE_FINDERS=False):
        middleware = WhiteNoiseMiddleware(lambda request: None)
        static_file = middleware.files.get(url) or middleware.find_file(url)
        assert static_file is not None
        response = middleware.serve(static_file, client.get("/").wsgi_request)
    assert response["Content-Type"].startswith("text/javascript")

"""Static files in production: hashed names, gzipped ahead of time, cached for a year."""

import os
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
    js = {p.name for p in (collected / "js").iterdir()}
    assert any(n.startswith("chat.") and n.endswith(".js.gz") for n in js)


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

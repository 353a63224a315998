import os
import subprocess
import sys
from pathlib import Path

import pytest

from companionhub.env_check import demo_backend_problem, production_problems

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "SECRET_KEY": "k3Jx9-pQ2vLm8Rt4Wz7Ya1Bc6Nd0Fe5Gh2Ij8Kl4Mn9Op3Qr7St1Uv6Wx0Yz-5aB",
    "ALLOWED_HOSTS": "chat.example.com",
    "DATABASE_URL": "postgres://ch:pw@db:5432/companionhub",
    "REDIS_URL": "redis://redis:6379/0",
}


def test_a_complete_environment_has_no_problems():
    assert production_problems(GOOD) == []


def test_every_missing_variable_is_listed_at_once():
    problems = "\n".join(production_problems({}))
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"):
        assert f"{name} is missing" in problems


def test_invalid_values_are_named():
    env = {
        **GOOD,
        "SECRET_KEY": "short",
        "ALLOWED_HOSTS": "*",
        "DATABASE_URL": "sqlite:///db.sqlite3",
        "REDIS_URL": "http://redis",
        "CSRF_TRUSTED_ORIGINS": "chat.example.com",
    }
    problems = "\n".join(production_problems(env))
    assert "SECRET_KEY is too weak" in problems
    assert "ALLOWED_HOSTS must not contain '*'" in problems
    assert "DATABASE_URL is invalid" in problems
    assert "REDIS_URL is invalid" in problems
    assert "CSRF_TRUSTED_ORIGINS entry 'chat.example.com'" in problems


def test_a_placeholder_secret_is_refused():
    env = {**GOOD, "SECRET_KEY": "django-insecure-" + "x1y2z3" * 10}
    assert any("placeholder" in p for p in production_problems(env))


def run_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [sys.executable, "-c", "import django; from django.conf import settings; settings.DEBUG"],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "companionhub.settings", "ENV_FILE": os.devnull, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_start_fails_with_one_message_listing_everything():
    result = run_settings({"DEBUG": "False"})
    assert result.returncode != 0
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("cannot start in production") == 1


def test_production_starts_with_a_complete_environment():
    result = run_settings({"DEBUG": "False", **GOOD})
    assert result.returncode == 0, result.stderr


def test_check_deploy_is_silent_in_production():
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**base, "ENV_FILE": os.devnull, "DEBUG": "False", **GOOD},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNINGS" not in result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_a_short_metrics_token_is_refused_and_none_is_fine():
    assert production_problems({**GOOD, "METRICS_TOKEN": "short"}) == [
        "METRICS_TOKEN is too short: use at least 32 random characters, or leave it empty."
    ]
    assert production_problems({**GOOD, "METRICS_TOKEN": "x" * 32}) == []
    assert production_problems({**GOOD, "METRICS_TOKEN": ""}) == []


def test_production_without_an_llm_back_end_is_refused_unless_the_demo_is_meant():
    problem = demo_backend_problem({}, enabled_llm_connections=0)
    assert "LLM_BASE_URL" in problem and "ALLOW_DEMO_BACKENDS" in problem
    assert demo_backend_problem({"ALLOW_DEMO_BACKENDS": "True"}, enabled_llm_connections=0) is None
    assert demo_backend_problem({"LLM_BASE_URL": "http://llm:8080/v1"}, enabled_llm_connections=0) is None
    assert demo_backend_problem({"NOVITA_KEY": "k"}, enabled_llm_connections=0) is None
    assert demo_backend_problem({}, enabled_llm_connections=1) is None


@pytest.mark.django_db
def test_a_process_without_an_llm_back_end_refuses_to_start(settings):
    from chat.connections import connection_save
    from chat.models import Connection
    from chat.startup import BackendsMissing, backends_startup

    settings.ALLOW_DEMO_BACKENDS = False
    settings.LLM_BASE_URL = settings.NOVITA_KEY = ""
    with pytest.raises(BackendsMissing) as caught:
        backends_startup()
    assert "LLM_BASE_URL" in str(caught.value) and "ALLOW_DEMO_BACKENDS" in str(caught.value)
    connection_save(
        connection=Connection(name="Box", kind="llm", provider="openai-compatible",
                              base_url="http://127.0.0.1:9/v1", default_model="m")
    )  # fmt: skip
    backends_startup()  # a connection row is enough
    settings.ALLOW_DEMO_BACKENDS = True
    Connection.objects.all().delete()
    backends_startup()


@pytest.mark.django_db
def test_an_environment_only_configuration_starts_and_gets_its_row(settings):
    from chat.models import Connection
    from chat.startup import backends_startup

    settings.ALLOW_DEMO_BACKENDS = False
    settings.LLM_BASE_URL, settings.LLM_MODEL, settings.LLM_API_KEY = "http://127.0.0.1:9/v1", "m", "k"
    backends_startup()
    row = Connection.objects.get(from_env=True, kind="llm")
    assert row.is_default and row.default_model == "m"


@pytest.mark.django_db
def test_a_worker_checks_its_back_ends_as_it_starts(settings):
    # The worker_init receiver itself: sending the signal would also run Celery's Django
    # fix-up, which closes this test's database connection.
    from chat.startup import BackendsMissing
    from companionhub.celery import _check_backends

    settings.ALLOW_DEMO_BACKENDS = False
    settings.LLM_BASE_URL = settings.NOVITA_KEY = ""
    with pytest.raises(BackendsMissing):
        _check_backends()
    settings.ALLOW_DEMO_BACKENDS = True
    _check_backends()

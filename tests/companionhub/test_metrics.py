"""``GET /metrics``: Prometheus text format, who may read it, and each series moving with its event."""

import math
import re

import pytest
from django.core.cache import cache
from django.urls import reverse

from accounts import tokens
from chat import runs
from chat.backends import breaker_for, llm_breaker
from chat.models import PipelineRun
from companionhub import metrics, ratelimits
from tests.companions.factories import make_companion, make_run

URL = reverse("metrics")

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABELS = rf"\{{(?:[a-zA-Z_][a-zA-Z0-9_]*={LABEL_VALUE}(?:,[a-zA-Z_][a-zA-Z0-9_]*={LABEL_VALUE})*)?\}}"
SAMPLE = re.compile(rf"^({NAME})({LABELS})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$")
LABEL_PAIR = re.compile(rf"([a-zA-Z_][a-zA-Z0-9_]*)=({LABEL_VALUE})")
FAMILIES = {
    "companionhub_pipeline_runs": "gauge",
    "companionhub_tokens_total": "counter",
    "companionhub_images_generated_total": "counter",
    "companionhub_step_duration_seconds": "histogram",
    "companionhub_rate_limit_hits_total": "counter",
    "companionhub_websocket_connections": "gauge",
    "companionhub_relay_resyncs_total": "counter",
    "companionhub_circuit_breaker_state": "gauge",
    "companionhub_circuit_breaker_failures": "gauge",
    "companionhub_page_cache_requests_total": "counter",
}


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value[1:-1])


def parse(text: str) -> tuple[dict[str, str], dict[tuple[str, frozenset], float]]:
    """A small parser of the text format 0.0.4: (family -> type, (name, labels) -> value).

    Fails on any line that is not HELP, TYPE or a well-formed sample, on a
    sample before its family's TYPE, and on a family declared twice.
    """
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples: dict[tuple[str, frozenset], float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"family declared twice: {name}"
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}
            types[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.group(1), match.group(2) or "", match.group(3)
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"sample before its TYPE: {line!r}"
        pairs = frozenset((k, _unescape(v)) for k, v in LABEL_PAIR.findall(labels))
        assert (name, pairs) not in samples, f"duplicate sample: {line!r}"
        samples[(name, pairs)] = float(value.replace("+Inf", "inf"))
    return types, samples


def value(samples, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def scrape(client, staff_user):
    def get():
        client.force_login(staff_user)
        response = client.get(URL)
        assert response.status_code == 200
        return parse(response.content.decode())[1]

    return get


@pytest.fixture(autouse=True)
def fresh_counters():
    keys = [f"metrics:ratelimit:{scope}" for scope in ("chat_message", "login", "image")]
    for step in metrics.step_names():
        keys += [f"metrics:step:{step}:{part}" for part in ("count", "sum_ms")]
        keys += [f"metrics:step:{step}:bucket:{i}" for i in range(len(metrics.BUCKETS) + 1)]
    cache.delete_many([*keys, metrics.WS_DIRECTORY])
    # The demo back ends' breakers (no connection rows here); found without the database.
    demo = [breaker_for(None, "llm"), breaker_for(None, "image")]
    for breaker in demo:
        breaker.reset()
    yield
    for breaker in demo:
        breaker.reset()


# --- access ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_is_refused_with_401(client):
    response = client.get(URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"companionhub_" not in response.content


def test_a_signed_in_non_staff_user_is_refused(client, user):
    client.force_login(user)
    assert client.get(URL).status_code == 403


def test_staff_sessions_get_the_text_format(client, staff_user):
    client.force_login(staff_user)
    response = client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_a_staff_users_api_token_is_accepted(client, staff_user):
    _, secret = tokens.token_create(user=staff_user, name="prometheus")
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200


def test_a_non_staff_users_api_token_is_refused(client, user):
    _, secret = tokens.token_create(user=user, name="mine")
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 403


def test_a_revoked_or_made_up_token_is_401(client, staff_user):
    token, secret = tokens.token_create(user=staff_user, name="old")
    tokens.token_revoke(user=staff_user, token_id=token.pk)
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer chk_nonsense").status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION="Basic YWxpY2U6cHc=").status_code == 401


@pytest.mark.django_db
def test_the_scraper_token_is_accepted_and_a_wrong_one_is_not(client, settings):
    settings.METRICS_TOKEN = "scraper-secret-0123456789abcdef"
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer scraper-secret-0123456789abcdef").status_code == 200
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer scraper-secret-0123456789abcdeX").status_code == 401


@pytest.mark.django_db
def test_an_empty_scraper_token_setting_opens_nothing(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_it_rejects_post(client, staff_user):
    client.force_login(staff_user)
    assert client.post(URL).status_code == 405


# --- format ---------------------------------------------------------------------------


def test_every_family_is_declared_and_the_text_parses(client, staff_user):
    client.force_login(staff_user)
    types, samples = parse(client.get(URL).content.decode())
    assert types == FAMILIES
    assert value(samples, "companionhub_websocket_connections") == 0


def test_label_values_are_escaped():
    out = metrics.Exposition()
    out.family("x_total", "counter", "help with \\ and\nnewline")
    out.sample("x_total", 1, {"scope": 'a"b\\c\nd'})
    text = out.text()
    assert 'x_total{scope="a\\"b\\\\c\\nd"} 1' in text
    assert "# HELP x_total help with \\\\ and\\nnewline" in text
    _, samples = parse(text)
    assert value(samples, "x_total", scope='a"b\\c\nd') == 1


def test_the_histogram_is_cumulative_with_sum_and_count(scrape):
    run_id = _run(status="running")
    runs.run_step_ended(run_id, step="generate_reply", milliseconds=700)
    runs.run_step_ended(run_id, step="generate_reply", milliseconds=4000)
    runs.run_step_ended(run_id, step="analyze_context", milliseconds=20)
    samples = scrape()
    bucket = "companionhub_step_duration_seconds_bucket"
    assert value(samples, bucket, step="generate_reply", le="0.5") == 0
    assert value(samples, bucket, step="generate_reply", le="1.0") == 1
    assert value(samples, bucket, step="generate_reply", le="5.0") == 2
    assert value(samples, bucket, step="generate_reply", le="+Inf") == 2
    assert value(samples, "companionhub_step_duration_seconds_count", step="generate_reply") == 2
    assert math.isclose(value(samples, "companionhub_step_duration_seconds_sum", step="generate_reply"), 4.7)
    assert value(samples, bucket, step="analyze_context", le="0.05") == 1
    buckets = [
        v for (name, labels), v in samples.items() if name == bucket and ("step", "reanalyze") in labels
    ]
    assert buckets and all(v == 0 for v in buckets)


# --- each series moves with its event ---------------------------------------------------------


def _run(*, status: str = "queued") -> str:
    from accounts.models import User

    owner = User.objects.get(username="moderator")
    return make_run(make_companion(owner), status=status).pk


def test_runs_by_status_follow_the_database(scrape):
    before = scrape()
    assert value(before, "companionhub_pipeline_runs", status="failed") == 0
    run_id = _run(status="running")
    assert value(scrape(), "companionhub_pipeline_runs", status="running") == 1
    runs.run_mark_failed(run_id, code="timed_out", text="stuck")
    after = scrape()
    assert value(after, "companionhub_pipeline_runs", status="running") == 0
    assert value(after, "companionhub_pipeline_runs", status="failed") == 1
    assert value(after, "companionhub_pipeline_runs", status="completed") == 0


def test_tokens_and_images_count_what_finished_runs_were_charged(scrape):
    before = scrape()
    assert value(before, "companionhub_tokens_total", kind="prompt") == 0
    run_id = _run(status="running")
    run = PipelineRun.objects.get(pk=run_id)
    from accounts.usage import usage_record_run

    usage_record_run(
        run_id=run.pk,
        user_id=run.companion.owner_id,
        companion_id=run.companion_id,
        companion_name=run.companion.name,
        status="completed",
        prompt_tokens=120,
        completion_tokens=45,
        image_count=1,
    )
    after = scrape()
    assert value(after, "companionhub_tokens_total", kind="prompt") == 120
    assert value(after, "companionhub_tokens_total", kind="completion") == 45
    assert value(after, "companionhub_images_generated_total") == 1


def test_rate_limit_hits_are_counted_where_the_limit_triggers(scrape, rate_limits, user):
    assert value(scrape(), "companionhub_rate_limit_hits_total", scope="chat_message") == 0
    for _ in range(3):  # the limit is 2 a minute: the third is refused
        ratelimits.hit("chat_message", f"user:{user.pk}")
    samples = scrape()
    assert value(samples, "companionhub_rate_limit_hits_total", scope="chat_message") == 1
    assert value(samples, "companionhub_rate_limit_hits_total", scope="login") == 0


def test_breaker_state_follows_the_breaker(scrape, settings):
    samples = scrape()
    assert value(samples, "companionhub_circuit_breaker_state", backend="llm", state="closed") == 1
    assert value(samples, "companionhub_circuit_breaker_state", backend="images", state="open") == 0
    breaker = llm_breaker()
    for _ in range(settings.CIRCUIT_FAILURE_THRESHOLD):
        breaker.record_failure()
    samples = scrape()
    assert value(samples, "companionhub_circuit_breaker_state", backend="llm", state="open") == 1
    assert value(samples, "companionhub_circuit_breaker_state", backend="llm", state="closed") == 0
    assert (
        value(samples, "companionhub_circuit_breaker_failures", backend="llm")
        == settings.CIRCUIT_FAILURE_THRESHOLD
    )
    assert value(samples, "companionhub_circuit_breaker_state", backend="images", state="closed") == 1


def test_page_cache_hits_and_misses_are_exposed(scrape, client):
    from companionhub import pagecache

    pagecache.reset_stats()
    client.logout()
    client.get(reverse("home"))
    client.get(reverse("home"))
    samples = scrape()
    name = "companionhub_page_cache_requests_total"
    assert value(samples, name, page="landing", result="hit") == 1
    assert value(samples, name, page="landing", result="miss") == 1


def test_the_websocket_gauge_sums_live_processes_and_forgets_dead_ones(scrape):
    import time

    cache.set(metrics.WS_DIRECTORY, {"host-1": time.time(), "host-2": time.time()}, timeout=None)
    cache.set(metrics._ws_key("host-1"), 3, timeout=metrics.WS_KEY_TTL)
    cache.set(metrics._ws_key("host-2"), 2, timeout=metrics.WS_KEY_TTL)
    assert value(scrape(), "companionhub_websocket_connections") == 5
    cache.delete(metrics._ws_key("host-2"))  # host-2 died: its key was not renewed and expired
    assert value(scrape(), "companionhub_websocket_connections") == 3


def test_a_publish_prunes_processes_not_seen_for_longer_than_the_ttl():
    import time

    stale = time.time() - metrics.WS_KEY_TTL - 1
    cache.set(metrics.WS_DIRECTORY, {"gone": stale}, timeout=None)
    metrics._publish_ws_count(0)
    assert set(cache.get(metrics.WS_DIRECTORY)) == {metrics.PROCESS_ID}


def test_every_connection_has_its_own_breaker_in_the_metrics(scrape, settings):
    from chat.backend_models import Connection

    home = Connection.objects.create(name="Home llama", kind="llm", provider="openai-compatible")
    cloud = Connection.objects.create(name="Cloud", kind="llm", provider="openai-compatible")
    tripped = breaker_for(cloud, "llm")
    try:
        for _ in range(settings.CIRCUIT_FAILURE_THRESHOLD):
            tripped.record_failure()
        samples = scrape()
        name = "companionhub_circuit_breaker_state"
        assert value(samples, name, backend=f"llm:{cloud.pk}", state="open") == 1
        assert value(samples, name, backend=f"llm:{home.pk}", state="closed") == 1
    finally:
        tripped.reset()

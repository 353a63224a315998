"""The deployment files keep Daphne behind the proxy and take the client address from trusted hops only."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NGINX = ROOT / "deploy" / "nginx" / "companionhub.conf"


def compose_services() -> dict[str, str]:
    """docker-compose.yml's services, name -> the text of its block (no YAML parser needed)."""
    text = (ROOT / "docker-compose.yml").read_text()
    services_block = re.search(r"(?ms)^services:\n(.*?)(?=^\S)", text + "\nend:\n").group(1)
    names = list(re.finditer(r"(?m)^  ([a-z][\w-]*):\s*$", services_block))
    return {
        match.group(1): services_block[match.end() : nxt.start() if nxt else len(services_block)]
        for match, nxt in zip(names, [*names[1:], None], strict=True)
    }


def test_daphne_never_trusts_proxy_headers_itself():
    # --proxy-headers takes the leftmost X-Forwarded-For entry, which the client writes.
    for name in ("Procfile", "Dockerfile", "docker-compose.yml", "README.md", "docs/security.md"):
        text = (ROOT / name).read_text()
        assert "daphne" in text.lower(), name
        for line in text.splitlines():
            if "daphne" in line and "--proxy-headers" in line:
                raise AssertionError(f"{name} starts Daphne with --proxy-headers: {line.strip()}")


def test_compose_publishes_only_the_proxy():
    services = compose_services()
    assert {"web", "proxy"} <= set(services)
    published = sorted(name for name, block in services.items() if re.search(r"(?m)^    ports:", block))
    assert published == ["proxy"]
    assert "deploy/nginx/companionhub.conf" in services["proxy"]


def test_compose_web_trusts_exactly_the_proxy_hop():
    web = compose_services()["web"]
    assert re.search(r"""(?m)^      TRUSTED_PROXY_HOPS: "1"\s""", web)
    assert "<<: *app-environment" in web  # and keeps the database and Redis URLs


def test_the_nginx_config_caps_bodies_and_writes_the_trusted_address():
    conf = NGINX.read_text()
    size = re.search(r"client_max_body_size\s+(\d+)m;", conf)
    assert size and int(size.group(1)) <= 12
    assert re.search(r"proxy_set_header X-Forwarded-For \$(remote_addr|proxy_add_x_forwarded_for);", conf)
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "proxy_set_header Host $http_host;" in conf  # with the port, for the Origin check
    assert "proxy_buffering off;" in conf
    assert re.search(r"location /protected-media/ \{\s*internal;", conf)
    assert "server web:8000;" in conf

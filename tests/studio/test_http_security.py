"""HTTP security: a strict Content-Security-Policy on every page, Secure cookies and HSTS when
configured, and a proxy's forwarded headers believed only from a configured proxy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from django.test import Client

from studio.cli.server import web_argv
from studio.config import ConfigError, load_config
from tests.factories import make_team, make_user
from tests.support import free_port

STRICT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "style-src-attr 'unsafe-hashes' 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='; "
    "img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


# --- Content-Security-Policy -----------------------------------------------------------


def test_the_login_page_gets_the_strict_policy(client: Client) -> None:
    response = client.get("/login/")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == STRICT_POLICY


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/experiments/", "/jobs/", "/settings/tokens/"])
def test_every_page_gets_the_strict_policy(client: Client, path: str) -> None:
    client.force_login(make_user(make_team(), username="ada"))
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == STRICT_POLICY


@pytest.mark.django_db
def test_only_the_webgl_compare_page_may_eval(client: Client) -> None:
    from experiments import services as tracking

    team = make_team("lab")
    user = make_user(team, username="ada")
    experiment = tracking.experiment_create(team=team, name="vision", actor=user)
    runs = [
        tracking.run_create(experiment=experiment, name=name, actor=user) for name in ("a", "b")
    ]
    client.force_login(user)
    query = "&".join(f"run={run.run_uuid}" for run in runs)
    response = client.get(f"/runs/compare/?{query}")
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-eval';" in policy
    assert policy.replace(" 'unsafe-eval'", "") == STRICT_POLICY


def test_pages_are_not_framed_and_types_not_sniffed(client: Client) -> None:
    response = client.get("/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


# --- configuration ---------------------------------------------------------------------


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"STUDIOLO_HOME": str(tmp_path / "home"), **values}


def test_behind_a_proxy_settings_default_to_off(tmp_path: Path) -> None:
    security = load_config(_env(tmp_path)).proxy_security
    assert security.secure_cookies is False
    assert security.hsts_seconds == 0
    assert security.trusted_proxies == []


def test_behind_a_proxy_settings_are_read(tmp_path: Path) -> None:
    security = load_config(
        _env(
            tmp_path,
            SECURE_COOKIES="true",
            HSTS_SECONDS="31536000",
            TRUSTED_PROXIES="127.0.0.1, 172.18.0.0/16,::1",
        )
    ).proxy_security
    assert security.secure_cookies is True
    assert security.hsts_seconds == 31_536_000
    assert security.trusted_proxies == ["127.0.0.1", "172.18.0.0/16", "::1"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SECURE_COOKIES", "maybe", "SECURE_COOKIES: expected true or false, got 'maybe'"),
        ("HSTS_SECONDS", "-1", "HSTS_SECONDS: must be between 0 and 63072000, got -1"),
        ("HSTS_SECONDS", "1y", "HSTS_SECONDS: expected a whole number, got '1y'"),
        ("TRUSTED_PROXIES", "proxy.local", "TRUSTED_PROXIES: 'proxy.local' is not an IP address"),
    ],
)
def test_a_bad_proxy_setting_names_the_variable(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(_env(tmp_path, **{name: value}))
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_django_settings_apply_them(tmp_path: Path) -> None:
    """Through the real settings module, in a fresh interpreter (settings load once)."""
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps([settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, "
        "settings.SECURE_HSTS_SECONDS, settings.TRUSTED_PROXIES]))"
    )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "studio.settings",
        "STUDIOLO_HOME": str(tmp_path),
        "SECURE_COOKIES": "true",
        "HSTS_SECONDS": "600",
        "TRUSTED_PROXIES": "10.0.0.1",
    }
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert json.loads(result.stdout) == [True, True, 600, ["10.0.0.1"]]


# --- forwarded headers, through `studiolo web`'s own command line ----------------------

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}


@contextmanager
def studio_web(tmp_path: Path, **values: str) -> Iterator[str]:
    """`studiolo web`'s uvicorn command line (studio.cli.server.web_argv) in a process of its
    own, configured by `values`: Django's middleware reads these settings once, at start."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "studio.settings",
        "STUDIOLO_HOME": str(tmp_path / "home"),
        "LOG_LEVEL": "WARNING",
        **values,
    }
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and command line
        web_argv(load_config(environment), "127.0.0.1", port),
        env=environment,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("studiolo web did not start")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_forwarded_https_is_ignored_unless_the_peer_is_a_trusted_proxy(tmp_path: Path) -> None:
    # uvicorn alone would believe any process on 127.0.0.1; `studiolo web` believes nobody
    # unless told.
    with studio_web(tmp_path, HSTS_SECONDS="600", SECURE_COOKIES="true") as base:
        response = httpx.get(f"{base}/login/", headers=FORWARDED)
        assert response.status_code == 200
        assert "strict-transport-security" not in response.headers
    with studio_web(tmp_path, HSTS_SECONDS="600", TRUSTED_PROXIES="192.0.2.1") as base:
        response = httpx.get(f"{base}/login/", headers=FORWARDED)
        assert "strict-transport-security" not in response.headers


def test_https_forwarded_by_the_trusted_proxy_gets_hsts_and_secure_cookies(
    tmp_path: Path,
) -> None:
    with studio_web(
        tmp_path, HSTS_SECONDS="600", SECURE_COOKIES="true", TRUSTED_PROXIES="127.0.0.1"
    ) as base:
        response = httpx.get(f"{base}/login/", headers=FORWARDED)
        assert response.status_code == 200
        assert response.headers["strict-transport-security"] == "max-age=600"
        assert "secure" in response.headers["set-cookie"].lower().split("; ")
        # Plain HTTP through the same proxy: no HSTS (a browser ignores it there anyway).
        response = httpx.get(f"{base}/login/", headers={"X-Forwarded-Proto": "http"})
        assert "strict-transport-security" not in response.headers

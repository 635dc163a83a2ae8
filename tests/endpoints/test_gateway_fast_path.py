"""The data plane's fast path inside uvicorn (`endpoints.uvicorn_protocol`).

`asgi_server` runs uvicorn with the protocol `studiolo web` uses, so every test of
test_gateway.py already goes through it. These tests pin down what is particular to it: which
requests take it, that the others (and the same requests under the ASGI path) get the same
answers, and that a connection mixing both keeps its answers in order."""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from endpoints.gateway.app import DataPlane, data_plane
from tests.endpoints.test_gateway import (  # noqa: F401 - fixtures used by name
    Client,
    Upstream,
    _fresh_gateway,
    make_endpoint,
    member,
    upstreams,
)
from tests.factories import make_team

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def asgi_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The endpoint names of the invocations that went through the ASGI face."""
    calls: list[str] = []
    original = DataPlane.handle

    async def counting(name: str, scope: Any, receive: Any, send: Any) -> None:
        calls.append(name)
        await original(data_plane, name, scope, receive, send)

    monkeypatch.setattr(data_plane, "handle", counting)
    return calls


@pytest.fixture
def endpoint_token(upstreams: dict[str, Upstream]) -> str:  # noqa: F811 - the fixture
    team = make_team()
    _, token = member(team)
    make_endpoint(team, "churn", {"main": (1.0, [upstreams["a1"]])})
    return token


def raw_exchange(base_url: str, data: bytes, answers: int) -> list[tuple[bytes, dict, bytes]]:
    """Send `data` as is on one connection and read `answers` HTTP answers (Content-Length
    framed): [(status line, headers, body)]."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(data)
        buffer = b""
        result = []
        while len(result) < answers:
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                assert chunk, f"connection closed after {len(result)} answers"
                buffer += chunk
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            status, *lines = head.split(b"\r\n")
            headers = {k.strip().lower(): v.strip() for k, v in (ln.split(b":", 1) for ln in lines)}
            length = int(headers[b"content-length"])
            while len(buffer) < length:
                chunk = sock.recv(65536)
                assert chunk, "connection closed mid-body"
                buffer += chunk
            result.append((status, headers, buffer[:length]))
            buffer = buffer[length:]
        return result


def invocation(token: str, payload: dict[str, Any], *, extra: bytes = b"") -> bytes:
    body = json.dumps(payload).encode()
    return (
        b"POST /endpoints/churn/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer " + token.encode() + b"\r\n"
        b"Content-Length: %d\r\n" % len(body) + extra + b"\r\n" + body
    )


def test_a_plain_invocation_skips_the_asgi_layers(
    asgi_server: str, endpoint_token: str, asgi_calls: list[str]
) -> None:
    status, body, response = Client(asgi_server, endpoint_token).invoke("churn", {"n": 1})

    assert status == 200, body
    assert body["echo"] == {"n": 1}
    assert response.getheader("x-Amzn-Invoked-Production-Variant") == "main"
    assert response.getheader("date")
    assert response.getheader("server") == "uvicorn"
    assert asgi_calls == []


def test_other_requests_take_the_asgi_path_with_the_same_answers(
    asgi_server: str, endpoint_token: str, asgi_calls: list[str]
) -> None:
    payload = json.dumps({"n": 2}).encode()
    head = (
        b"POST /endpoints/churn/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer "
        + endpoint_token.encode()
        + b"\r\n"
    )
    chunked = (
        head
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(payload)
        + payload
        + b"\r\n0\r\n\r\n"
    )
    [(fast_status, fast_headers, fast_body)] = raw_exchange(
        asgi_server, invocation(endpoint_token, {"n": 2}), 1
    )
    [(slow_status, slow_headers, slow_body)] = raw_exchange(asgi_server, chunked, 1)
    # HTTP/1.0 and a query string: the ASGI path as well.
    http10 = invocation(endpoint_token, {"n": 2}).replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    [(old_status, _, old_body)] = raw_exchange(asgi_server, http10, 1)
    query = invocation(endpoint_token, {"n": 2}).replace(b"invocations", b"invocations?x=1", 1)
    [(query_status, _, query_body)] = raw_exchange(asgi_server, query, 1)

    assert fast_status == slow_status == b"HTTP/1.1 200 OK"
    assert old_status.endswith(b"200 OK")
    assert query_status == b"HTTP/1.1 200 OK"
    assert fast_body == slow_body == old_body == query_body
    assert json.loads(fast_body)["echo"] == {"n": 2}
    for name in (b"content-type", b"x-amzn-invoked-production-variant"):
        assert fast_headers[name] == slow_headers[name]
    assert asgi_calls == ["churn", "churn", "churn"]


def test_errors_are_the_same_on_both_paths(
    asgi_server: str, endpoint_token: str, asgi_calls: list[str]
) -> None:
    bad_token = invocation("stl_nope", {"n": 3})
    missing = invocation(endpoint_token, {"n": 3}).replace(b"churn", b"nothing", 1)
    fast = raw_exchange(asgi_server, bad_token + missing, 2)
    slow = raw_exchange(
        asgi_server,
        bad_token.replace(b"HTTP/1.1", b"HTTP/1.0", 1) + missing.replace(b"1.1", b"1.0", 1),
        1,  # HTTP/1.0 without keep-alive: one answer, then the connection closes
    )

    assert [status for status, _, _ in fast] == [
        b"HTTP/1.1 401 Unauthorized",
        b"HTTP/1.1 404 Not Found",
    ]
    assert slow[0][0].endswith(b"401 Unauthorized")
    assert fast[0][2] == slow[0][2]
    assert fast[0][1][b"x-amzn-errortype"] == slow[0][1][b"x-amzn-errortype"]
    assert fast[0][1][b"www-authenticate"] == b"Bearer"
    assert json.loads(fast[1][2])["error"]["code"] == "not_found"
    # The second request was pipelined behind the first, still being answered: uvicorn's
    # pipeline (the ASGI path) keeps it in order. The HTTP/1.0 one is ASGI's as well.
    assert asgi_calls == ["nothing", "churn"]


def test_pipelined_requests_are_answered_in_order(
    asgi_server: str,
    endpoint_token: str,
    upstreams: dict[str, Upstream],  # noqa: F811
) -> None:
    # A slow fast-path request, then a Django page and a quick invocation, in one write: the
    # answers come back in the order asked, on the same connection.
    pipelined = (
        invocation(endpoint_token, {"sleep": 0.5, "i": 1})
        + b"GET /endpoints/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        + invocation(endpoint_token, {"i": 3})
    )

    answers = raw_exchange(asgi_server, pipelined, 3)

    first, page, third = answers
    assert json.loads(first[2])["echo"] == {"sleep": 0.5, "i": 1}
    assert page[0].split(b" ")[1] in (b"200", b"302")  # the UI (or its login redirect)
    assert b"x-amzn-invoked-production-variant" not in page[1]
    assert json.loads(third[2])["echo"] == {"i": 3}


def test_connection_close_is_honoured(asgi_server: str, endpoint_token: str) -> None:
    parts = urlsplit(asgi_server)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(invocation(endpoint_token, {"n": 4}, extra=b"Connection: close\r\n"))
        received = b""
        while chunk := sock.recv(65536):  # ends only when the server closes
            received += chunk

    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["echo"] == {"n": 4}


def test_a_kept_alive_connection_serves_invocations_and_pages_alike(
    asgi_server: str, endpoint_token: str
) -> None:
    client = Client(asgi_server, endpoint_token)
    for n in range(3):
        status, body, _ = client.invoke("churn", {"n": n})
        assert status == 200
        assert body["echo"] == {"n": n}
        client.connection.request("GET", "/endpoints/")
        page = client.connection.getresponse()
        page.read()
        assert page.status in (200, 302)

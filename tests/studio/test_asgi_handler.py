"""The web server's Django handler (studio/asgi_handler.py): every request runs whole on a
pooled thread, with the sync middleware chain, and each thread keeps its database
connection between requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import include, path

from studio.accounts.models import Team

SEEN: list[dict[str, object]] = []
STREAM_CLOSED = threading.Event()
MEETING = threading.Barrier(4)


@login_not_required
def slow(request: HttpRequest) -> HttpResponse:
    """Records where it ran, holds its thread a while, and uses the database."""
    count = Team.objects.count()
    SEEN.append(
        {
            "thread": threading.current_thread().name,
            "connection": id(connection.connection),
            "count": count,
        }
    )
    if request.GET.get("meet"):
        # Four requests meet here: only requests served side by side can all arrive.
        try:
            MEETING.wait(timeout=10)
        except threading.BrokenBarrierError:
            return JsonResponse({"met": False}, status=503)
    return JsonResponse({"teams": count})


@login_not_required
def stream(request: HttpRequest) -> StreamingHttpResponse:
    def parts() -> Iterator[bytes]:
        try:
            for number in range(5):
                yield f"part {number}\n".encode()
        finally:
            STREAM_CLOSED.set()

    return StreamingHttpResponse(parts(), content_type="text/plain")


urlpatterns = [
    path("_test/slow", slow),
    path("_test/stream", stream),
    path("", include("studio.urls")),
]


@pytest.fixture
def test_urls(settings: object) -> None:
    settings.ROOT_URLCONF = __name__  # type: ignore[attr-defined]
    SEEN.clear()
    STREAM_CLOSED.clear()
    MEETING.reset()


def test_requests_run_in_parallel_on_pooled_threads(asgi_server: str, test_urls: None) -> None:
    Team.objects.create(slug="pool", name="Pool")
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: httpx.get(f"{asgi_server}/_test/slow?meet=1", timeout=30), range(4))
        )
    assert [a.status_code for a in answers] == [200] * 4
    assert all(a.json() == {"teams": 1} for a in answers)
    threads = {str(seen["thread"]) for seen in SEEN}
    assert len(threads) == 4
    assert all(name.startswith("django") for name in threads)


def test_a_thread_keeps_its_database_connection(asgi_server: str, test_urls: None) -> None:
    for _ in range(6):
        assert httpx.get(f"{asgi_server}/_test/slow").status_code == 200
    by_thread: dict[object, set[object]] = {}
    for seen in SEEN:
        by_thread.setdefault(seen["thread"], set()).add(seen["connection"])
    # Requests one after another reuse an idle thread, and its connection with it.
    assert any(len(connections) == 1 for connections in by_thread.values())
    assert len(by_thread) < 6
    assert all(len(connections) == 1 for connections in by_thread.values()), by_thread


def test_the_middleware_chain_still_applies(asgi_server: str, test_urls: None) -> None:
    answer = httpx.get(f"{asgi_server}/_test/slow")
    # SecurityMiddleware and XFrameOptionsMiddleware ran on the way out.
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    # LoginRequiredMiddleware: a page that needs a login redirects to it.
    page = httpx.get(f"{asgi_server}/experiments/", follow_redirects=False)
    assert page.status_code == 302
    assert "/login" in page.headers["location"]
    # CsrfViewMiddleware: a form post without a token is refused.
    assert httpx.post(f"{asgi_server}/login/", data={"username": "x"}).status_code == 403


def test_streaming_responses_are_sent_whole_and_closed(asgi_server: str, test_urls: None) -> None:
    answer = httpx.get(f"{asgi_server}/_test/stream")
    assert answer.status_code == 200
    assert answer.text == "".join(f"part {n}\n" for n in range(5))
    assert STREAM_CLOSED.wait(5)

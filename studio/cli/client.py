"""The HTTP client of the client commands (`whoami`, `audit`, and those of later issues).

It reads STUDIOLO_URL and STUDIOLO_TOKEN only: client commands run on any machine that
can reach the studio and never load the instance's own configuration.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import IO, Any, Self

import httpx

from studio.cli.common import CliError

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
Params = Mapping[str, str | int | None]
# A submission retried with its idempotency key: after 1, 2, 4, 8 and 16 s (half a minute in
# all) while the studio cannot be reached or answers it is unavailable (a restart, Redis away).
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)
RETRY_STATUSES = frozenset({502, 503, 504})


class ApiClient:
    def __init__(
        self, base_url: str, token: str | None, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "studiolo-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.has_token = bool(token)
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=TIMEOUT, transport=transport
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        env = os.environ if env is None else env
        url = env.get("STUDIOLO_URL") or DEFAULT_URL
        if not url.startswith(("http://", "https://")):
            raise CliError(f"STUDIOLO_URL: expected http(s)://host:port, got {url!r}", code=2)
        return cls(url, env.get("STUDIOLO_TOKEN") or None)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def get(self, path: str, params: Params | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def create_once(self, path: str, json: Any, *, delays: tuple[float, ...] = RETRY_DELAYS) -> Any:
        """POST that creates something, safe to retry: it carries an `Idempotency-Key`, so a
        request that reached the studio before the connection failed, sent again, returns
        what the first one made rather than a second one (or a "name exists" error). Retried
        on connection errors, timeouts and 502/503/504, `delays` apart."""
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        for delay in delays:
            try:
                response = self.send("POST", path, json=json, headers=headers)
            except CliError:
                pass  # not reached, or no answer in time: the same request again
            else:
                if response.status_code not in RETRY_STATUSES:
                    return self._decoded("POST", response)
            time.sleep(delay)
        return self._decoded("POST", self.send("POST", path, json=json, headers=headers))

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def patch(self, path: str, json: Any = None) -> Any:
        return self.request("PATCH", path, json=json)

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        content: bytes | IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | float | None = None,
    ) -> httpx.Response:
        """Send one request and return the response whatever its status (an invocation's
        answer, or a 404 that means "gone"); an unreachable studio is a CliError."""
        query = {key: value for key, value in (params or {}).items() if value is not None}
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = timeout
        try:
            return self._http.request(
                method, path, params=query, json=json, content=content, headers=headers, **extra
            )
        except httpx.TimeoutException as exc:
            raise CliError(
                f"{self.base_url} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the studio at {self.base_url}: {exc or type(exc).__name__} "
                "(is it running? set STUDIOLO_URL)"
            ) from exc

    @contextlib.contextmanager
    def stream(
        self, path: str, params: Params | None = None, *, timeout: httpx.Timeout | None = None
    ) -> Iterator[httpx.Response]:
        """GET whose body is read in chunks by the caller (`iter_bytes`), never held whole;
        an error answer is a CliError with the API's message."""
        query = {key: value for key, value in (params or {}).items() if value is not None}
        try:
            with self._http.stream(
                "GET", path, params=query, timeout=timeout or TIMEOUT
            ) as response:
                if response.is_error:
                    response.read()
                    raise CliError(self.error_message(response))
                yield response
        except httpx.TimeoutException as exc:
            raise CliError(
                f"{self.base_url} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise CliError(f"cannot reach the studio at {self.base_url}: {exc}") from exc

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        content: IO[bytes] | None = None,
        timeout: httpx.Timeout | float | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON body or raise CliError with the API's message.

        `path` is relative to STUDIOLO_URL, or an absolute URL (a page's `next` link).
        """
        # A raw body (uploads) is streamed from the file.
        headers = {"Content-Type": "application/octet-stream"} if content is not None else None
        response = self.send(
            method,
            path,
            params=params,
            json=json,
            content=content,
            headers=headers,
            timeout=timeout,
        )
        return self._decoded(method, response)

    def _decoded(self, method: str, response: httpx.Response) -> Any:
        if response.is_error:
            raise CliError(self.error_message(response))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CliError(f"{method} {response.url}: the answer is not JSON") from exc

    def error_message(self, response: httpx.Response) -> str:
        """The studio's message from an error answer (`{"error": {"message"}}`), with a hint
        about STUDIOLO_TOKEN on a 401; else the status line."""
        message = None
        try:
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                message = body["error"].get("message")
        except ValueError:
            pass
        message = (
            message or f"HTTP {response.status_code} {response.reason_phrase} from {response.url}"
        )
        if response.status_code == 401:
            hint = (
                "STUDIOLO_TOKEN is refused" if self.has_token else "set STUDIOLO_TOKEN"
            ) + " (create one with `studiolo token create USER`)"
            message = f"{message}; {hint}"
        return str(message)

    def paginate(self, path: str, params: Params | None = None, *, limit: int) -> list[Any]:
        """Up to `limit` results of a cursor-paginated list, following `next` links."""
        page_params: dict[str, str | int | None] = {**(params or {}), "limit": min(limit, 500)}
        results: list[Any] = []
        url: str | None = path
        while url is not None and len(results) < limit:
            body = self.get(url, page_params)
            results.extend(body.get("results", []))
            url = body.get("next")
            page_params = {}  # the `next` link carries the cursor and the page size
        return results[:limit]

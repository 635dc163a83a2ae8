"""One HTTP call to the studio's REST API, and retrying the transient ones.

Standard library only (``urllib``), so the client installs anywhere: proxies from the usual
``HTTP(S)_PROXY``/``NO_PROXY`` variables are honoured, one connection per request (the
client sends about one request a second, so keep-alive would buy nothing).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from studiolo.errors import ApiError, ConfigurationError, TransportError

T = TypeVar("T")

# Answers that mean "try again later": timeouts, rate limits and every server-side failure.
RETRY_STATUSES = frozenset({408, 425, 429})


class Transient(Exception):
    """A failure worth retrying; `retry_after` is the server's hint in seconds, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: `initial`, twice that, ... capped at `maximum`.

    `attempts` bounds calls made in the caller's thread (creating a run, params, tags,
    artifacts); buffered metrics are retried for as long as the run lasts."""

    attempts: int = 6
    initial: float = 0.5
    maximum: float = 30.0

    def delay(self, attempt: int, hint: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1 for the first retry)."""
        base = min(self.maximum, self.initial * float(2 ** max(0, attempt - 1)))
        if hint is not None:
            return min(self.maximum, max(base, hint))
        return base * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


def call_with_retries(call: Callable[[], T], policy: RetryPolicy) -> T:
    """`call()` until it succeeds, raises a non-transient error, or `policy.attempts` run out."""
    attempt = 0
    while True:
        try:
            return call()
        except Transient as exc:
            attempt += 1
            if attempt >= policy.attempts:
                raise TransportError(f"{exc} (gave up after {attempt} attempts)") from None
            time.sleep(policy.delay(attempt, exc.retry_after))


class Http:
    """The studio at `base_url`, called with a bearer token."""

    def __init__(self, base_url: str, token: str | None, *, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(
                f"STUDIOLO_URL: expected http(s)://host:port, got {base_url!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._user_agent = "studiolo-client (python {}.{})".format(*sys.version_info[:2])

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str | int] | None = None,
        file: Path | None = None,
    ) -> Any:
        """One attempt. Returns the decoded JSON answer (None when empty); raises ApiError
        for a refusal (4xx) and Transient for what may pass (connection errors, timeouts,
        408/425/429 and 5xx answers)."""
        url = self.base_url + path
        if query:
            url += "?" + urlencode(query)
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data: Any = None
        stream = None
        if file is not None:
            stream = open(file, "rb")  # noqa: SIM115 - closed below, after the request
            headers["Content-Type"] = "application/octet-stream"
            headers["Content-Length"] = str(os.fstat(stream.fileno()).st_size)
            data = stream
        elif body is not None:
            data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - the scheme is checked to be http(s) above
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - as above
                raw = response.read()
        except urllib.error.HTTPError as error:
            raw = error.read()
            status = error.code
            if status in RETRY_STATUSES or status >= 500:
                raise Transient(
                    f"{method} {path}: HTTP {status} from {self.base_url}",
                    _retry_after(error.headers.get("Retry-After")),
                ) from None
            raise api_error(status, raw, method, path) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", None) or error
            raise Transient(f"cannot reach the studio at {self.base_url}: {reason}") from None
        finally:
            if stream is not None:
                stream.close()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise TransportError(f"{method} {path}: the studio's answer is not JSON") from None


def api_error(status: int, raw: bytes, method: str, path: str) -> ApiError:
    """The studio's `{"error": {"code", "message", "field"}}`, or the status line."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        message = str(error["message"])
        if status == 401:
            message += " (set STUDIOLO_TOKEN to a token of yours: `studiolo token create USER`)"
        return ApiError(
            message,
            status=status,
            code=str(error.get("code") or "error"),
            field=error.get("field") if isinstance(error.get("field"), str) else None,
        )
    return ApiError(f"{method} {path}: HTTP {status}", status=status)


def path_quote(path: str) -> str:
    return quote(path, safe="/")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None

"""`POST /endpoints/<name>/invocations`: a raw ASGI handler in front of Django.

The path of every prediction, so it is kept lean: no Django middleware, no DRF, no database
query on a warm cache (`directory`), the request forwarded over kept-alive connections
(`upstream`), counters kept in memory (`stats`).

What the client gets (errors in the studio's shape `{"error": {"code", "message", "field"}}`
plus a top-level `message` for AWS SDKs,
and every error with `x-amzn-ErrorType: <SageMaker's code>`, from which boto3's
sagemaker-runtime client raises the exception SageMaker would; see `errors`):

| status | x-amzn-ErrorType | when |
|---|---|---|
| the container's | `ModelError` on its 4xx/5xx | it answered: its status, body, `Content-Type` and custom attributes, plus `x-Amzn-Invoked-Production-Variant` (its 4xx/5xx too, body untouched) |
| 400 `invalid` | `ValidationError` | the endpoint is not `InService`/`Updating` (as SageMaker's ValidationError), an unknown `X-Amzn-SageMaker-Target-Variant`, a name found in several of the caller's teams without `X-Studiolo-Team`, an oversized custom-attributes or inference-id header |
| 401 `not_authenticated` | `MissingAuthenticationTokenException` (no token), `UnrecognizedClientException` | no, unknown, expired or revoked bearer token |
| 403 `permission_denied` | `AccessDeniedException` | a member of the endpoint's team whose role may not invoke |
| 404 `not_found` | `ValidationError` (SageMaker's answer for an unknown endpoint) | no such endpoint in the caller's teams (another team's endpoint looks the same) |
| 405 `method_not_allowed` | `UnknownOperationException` | anything but POST |
| 413 `payload_too_large` | `ValidationError` | a body over 6 MiB (refused on Content-Length, or as soon as reading passes it) |
| 500 `error` | `InternalFailure` | a bug in the data plane (logged) |
| 502 `bad_gateway` | `ModelError` | the container broke the connection mid-answer, answered invalid HTTP, or over 6 MiB |
| 503 `unavailable` | `ServiceUnavailable` | no healthy instance, or none of up to 3 tried accepted the request; the database unreachable on a cold cache |
| 504 `timeout` | `ModelError` (as SageMaker's "invocation timed out") | no answer within `ENDPOINT_INVOCATION_TIMEOUT_SECONDS` (never retried) |
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

from django.conf import settings

from endpoints.gateway import balancer, directory
from endpoints.gateway.errors import (
    ERROR_TYPE_HEADER,
    MODEL_ERROR,
    GatewayError,
    invalid,
    not_found,
    unavailable,
)
from endpoints.gateway.stats import counters
from endpoints.gateway.upstream import (
    BadResponse,
    ClosedBeforeResponse,
    ConnectFailed,
    Pool,
    UpstreamResponse,
)
from endpoints.models import SERVING_STATUSES, Endpoint

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INVOCATIONS_PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # 6,291,456: SageMaker's limit for requests and answers
MAX_ATTEMPTS = 3  # the first try and at most two retries on other instances
TEAM_HEADER = "X-Studiolo-Team"
TARGET_VARIANT_HEADER = "X-Amzn-SageMaker-Target-Variant"
MAX_CUSTOM_ATTRIBUTES = 1024
MAX_INFERENCE_ID = 64
MAX_NAME_LENGTH = Endpoint._meta.get_field("name").max_length or 63

# Request headers passed on to the container, under their canonical names.
_FORWARDED = {
    b"content-type": b"Content-Type",
    b"accept": b"Accept",
    b"x-amzn-sagemaker-custom-attributes": b"X-Amzn-SageMaker-Custom-Attributes",
    b"x-amzn-sagemaker-inference-id": b"X-Amzn-SageMaker-Inference-Id",
}
_MODEL_ERROR = (ERROR_TYPE_HEADER, MODEL_ERROR.encode())
_VARIANT_HEADER = b"x-Amzn-Invoked-Production-Variant"
_CUSTOM_ATTRIBUTES = b"X-Amzn-SageMaker-Custom-Attributes"


class _ClientGone(Exception):
    """The client disconnected before its request was complete: nobody to answer."""


@dataclass(slots=True)
class _Outcome:
    """What the statistics attribute a request to (known once the endpoint is resolved)."""

    endpoint_id: int | None = None
    variant: str = ""


@dataclass(slots=True)
class _Request:
    authorization: bytes | None = None
    team: str | None = None
    target_variant: str | None = None
    content_length: bytes | None = None
    forwarded: bytes = b""  # header lines for the container


class DataPlane:
    def __init__(self) -> None:
        # Connections belong to the event loop that opened them (tests run several loops).
        self._pools: WeakKeyDictionary[asyncio.AbstractEventLoop, Pool] = WeakKeyDictionary()

    async def handle(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI face: the body read from `receive`, the answer sent as two messages."""
        try:
            status, headers, body = await self.respond(
                name, scope["method"], scope["headers"], partial(_read_body, receive)
            )
        except _ClientGone:
            return
        headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def respond(
        self,
        name: str,
        method: str,
        raw_headers: Iterable[tuple[bytes, bytes]],
        read_body: Callable[[], Awaitable[bytes]],
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The answer to one invocation (status, headers without Content-Length, body), the
        studio's own errors included; its statistics recorded. `raw_headers` have lower-case
        names (ASGI's form). Raises `_ClientGone` when the client left before its body came.
        Shared by the ASGI face (`handle`) and uvicorn's fast path (`protocol`)."""
        started = time.perf_counter()
        outcome = _Outcome()
        headers: list[tuple[bytes, bytes]]
        try:
            status, headers, body = await self._invoke(
                name, method, raw_headers, read_body, outcome
            )
        except GatewayError as error:
            status, headers, body = error.status, error.response_headers(), error.body()
        except _ClientGone:
            raise
        except Exception:
            logger.exception("gateway: invocation of endpoint %r failed", name)
            failure = GatewayError(500, "error", "internal error in the studio's data plane")
            status, headers, body = failure.status, failure.response_headers(), failure.body()
        if outcome.endpoint_id is not None:
            elapsed_ms = (time.perf_counter() - started) * 1000
            counters.record(outcome.endpoint_id, outcome.variant, status, elapsed_ms)
        return status, headers, body

    async def _invoke(
        self,
        name: str,
        method: str,
        raw_headers: Iterable[tuple[bytes, bytes]],
        read_body: Callable[[], Awaitable[bytes]],
        outcome: _Outcome,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if method != "POST":
            raise GatewayError(
                405,
                "method_not_allowed",
                f"method {method} is not allowed; invocations are POST",
                headers=((b"allow", b"POST"),),
            )
        request = _parse_headers(raw_headers)
        principal = await _authenticate(request.authorization)
        route = await _resolve(name, principal, request.team)
        outcome.endpoint_id = route.endpoint_id

        if request.content_length is not None and _too_long(request.content_length):
            raise _payload_too_large()
        if route.status not in SERVING_STATUSES:
            raise invalid(f"endpoint {name!r} is {route.status}, not InService")
        target = None
        if request.target_variant is not None:
            target = route.variants.get(request.target_variant)
            if target is None:
                raise invalid(
                    f"endpoint {name!r} has no variant {request.target_variant!r} "
                    f"(variants: {', '.join(sorted(route.variants)) or 'none'})",
                    field=TARGET_VARIANT_HEADER,
                )
        variants = [target] if target is not None else route.variants.values()
        if not any(variant.instances for variant in variants):
            which = f"variant {target.name!r} of endpoint" if target else "endpoint"
            raise unavailable(f"{which} {name!r} has no healthy instance right now")

        body = await read_body()
        variant_name, response = await self._forward(name, route, target, request, body, outcome)
        headers = []
        if response.content_type is not None:
            headers.append((b"content-type", response.content_type))
        if response.custom_attributes is not None:
            headers.append((_CUSTOM_ATTRIBUTES, response.custom_attributes))
        headers.append((_VARIANT_HEADER, variant_name.encode()))
        if response.status >= 400:  # the model's own refusal or failure, body as it wrote it
            headers.append(_MODEL_ERROR)
        return response.status, headers, response.body

    async def _forward(
        self,
        name: str,
        route: directory.Route,
        target: directory.Variant | None,
        request: _Request,
        body: bytes,
        outcome: _Outcome,
    ) -> tuple[str, UpstreamResponse]:
        """Send to one instance; on a failure before any answer byte, mark it and try another
        (at most MAX_ATTEMPTS in all). Never after a timeout or a partial answer."""
        pool = self._pool()
        timeout: float = settings.ENDPOINT_INVOCATION_TIMEOUT_SECONDS
        tail = b"\r\nContent-Length: %d\r\n%s\r\n" % (len(body), request.forwarded)
        tried: list[int] = []
        failures: list[str] = []
        try:
            async with asyncio.timeout(timeout):
                for _ in range(MAX_ATTEMPTS):
                    choice = balancer.pick(route, target, tried)
                    if choice is None:
                        break
                    variant, instance = choice
                    tried.append(instance.id)
                    outcome.variant = variant.name
                    head = b"POST /invocations HTTP/1.1\r\nHost: " + instance.hostport + tail
                    balancer.started(instance)
                    try:
                        response = await pool.exchange(
                            instance, head, body, response_limit=MAX_PAYLOAD_BYTES
                        )
                    except (ConnectFailed, ClosedBeforeResponse) as error:
                        balancer.mark_bad(instance)
                        pool.discard(instance.id)
                        failures.append(str(error))
                        continue
                    finally:
                        balancer.finished(instance)
                    return variant.name, response
        except TimeoutError:
            raise GatewayError(
                504,
                "timeout",
                f"endpoint {name!r}: the model did not answer within {timeout:g} s",
            ) from None
        except BadResponse as error:
            raise GatewayError(502, "bad_gateway", f"endpoint {name!r}: {error}") from None
        raise unavailable(
            f"endpoint {name!r}: no instance accepted the request ({'; '.join(failures)})"
        )

    def _pool(self) -> Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = Pool()
        return pool


def _parse_headers(raw: Iterable[tuple[bytes, bytes]]) -> _Request:
    request = _Request()
    forwarded = []
    for name, value in raw:
        canonical = _FORWARDED.get(name)
        if canonical is not None:
            if name == b"x-amzn-sagemaker-custom-attributes" and len(value) > MAX_CUSTOM_ATTRIBUTES:
                raise invalid(
                    f"{canonical.decode()}: at most {MAX_CUSTOM_ATTRIBUTES} characters",
                    field=canonical.decode(),
                )
            if name == b"x-amzn-sagemaker-inference-id" and not 0 < len(value) <= MAX_INFERENCE_ID:
                raise invalid(
                    f"{canonical.decode()}: 1 to {MAX_INFERENCE_ID} characters",
                    field=canonical.decode(),
                )
            forwarded.append(canonical + b": " + value + b"\r\n")
        elif name == b"authorization":
            request.authorization = value
        elif name == b"content-length":
            request.content_length = value
        elif name == b"x-amzn-sagemaker-target-variant":
            request.target_variant = value.decode("latin-1")
        elif name == b"x-studiolo-team":
            request.team = value.decode("latin-1").strip()
    request.forwarded = b"".join(forwarded)
    return request


async def _authenticate(authorization: bytes | None) -> directory.Principal:
    keyword, _, secret = (authorization or b"").partition(b" ")
    principal = None
    if keyword.lower() == b"bearer" and secret.strip():
        try:
            principal = await directory.principal_for(secret.strip().decode("latin-1"))
        except Exception as error:
            raise _database_unavailable(error) from error
    if principal is None:
        if authorization is None:
            message = "authentication required: send Authorization: Bearer <API token>"
            error_type = "MissingAuthenticationTokenException"
        else:
            message, error_type = "invalid, expired or revoked API token", None
        raise GatewayError(
            401,
            "not_authenticated",
            message,
            headers=((b"www-authenticate", b"Bearer"),),
            error_type=error_type,
        )
    return principal


async def _resolve(
    name: str, principal: directory.Principal, team_slug: str | None
) -> directory.Route:
    """The caller's endpoint of that name; other teams' endpoints do not exist for them."""
    if len(name) > MAX_NAME_LENGTH:  # cannot exist; and must not fill the cache with junk
        raise not_found(name[:MAX_NAME_LENGTH] + "...")
    try:
        candidates = await directory.routes_named(name)
    except Exception as error:
        raise _database_unavailable(error) from error
    teams = principal.teams
    mine = [route for route in candidates if route.team_id in teams]
    if team_slug is not None:
        mine = [route for route in mine if teams[route.team_id].slug == team_slug]
    if not mine:
        raise not_found(name)
    if len(mine) > 1:
        slugs = ", ".join(sorted(teams[route.team_id].slug for route in mine))
        raise invalid(
            f"endpoint {name!r} exists in several of your teams ({slugs}); "
            f"name one in the {TEAM_HEADER} header",
            field=TEAM_HEADER,
        )
    route = mine[0]
    membership = teams[route.team_id]
    if not membership.may_invoke:
        raise GatewayError(
            403,
            "permission_denied",
            f"your role {membership.role!r} in team {membership.slug!r} does not allow "
            "endpoint.invoke",
        )
    return route


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_PAYLOAD_BYTES:
            raise _payload_too_large()  # stop reading; the server drops the rest
        if chunk:
            parts.append(chunk)
        if not message.get("more_body", False):
            break
    if len(parts) == 1:
        return parts[0]
    return b"".join(parts)


def _too_long(content_length: bytes) -> bool:
    try:
        return int(content_length) > MAX_PAYLOAD_BYTES
    except ValueError:
        return False  # the HTTP server refuses a malformed length before we see it


def _payload_too_large() -> GatewayError:
    return GatewayError(
        413,
        "payload_too_large",
        f"the request body exceeds {MAX_PAYLOAD_BYTES} bytes (6 MiB)",
    )


def _database_unavailable(error: Exception) -> GatewayError:
    # (directory logs the failure itself, for background refreshes too.)
    return unavailable("the studio's database did not answer; try again")


# The process's one data plane: the ASGI face and uvicorn's fast path share its pools.
data_plane = DataPlane()


def with_data_plane(inner: ASGIApp) -> ASGIApp:
    """`inner` (Django), with `POST /endpoints/<name>/invocations` answered by the data plane.

    Only that exact path is taken: `/endpoints/` and `/endpoints/<name>/` are UI pages.
    """
    plane = data_plane
    match = INVOCATIONS_PATH.match

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = match(scope["path"])
            if found is not None:
                await plane.handle(found.group(1), scope, receive, send)
                return
        await inner(scope, receive, send)

    return router


async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI lifespan: write pending statistics at shutdown. `studiolo web` turns lifespan on
    because uvicorn re-raises SIGTERM after stopping, which skips `atexit` handlers."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await asyncio.to_thread(counters.flush_now)
            await send({"type": "lifespan.shutdown.complete"})
            return

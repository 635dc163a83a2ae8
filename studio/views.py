"""Liveness and readiness probes (the only routes besides login that need no login) and
signed artifact downloads."""

from __future__ import annotations

import mimetypes

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import FileResponse, HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request

from studio import health
from studio.api.views import StudioAPIView
from studio.artifacts import get_store
from studio.artifacts.services import team_of_key
from studio.artifacts.signing import verify_download


@login_not_required
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving; says nothing about its dependencies."""
    return JsonResponse({"status": "ok"})


@csrf_exempt
@login_not_required
def api_not_found(request: HttpRequest) -> JsonResponse:
    """Any /api/v1/ path no route takes (an id that is not a number, a malformed slug): the
    API's 404, not the UI's HTML page or a redirect to the login form."""
    message = f"{request.path} is not a route of the API (see /api/v1/schema/)"
    return JsonResponse(
        {"error": {"code": "not_found", "message": message, "field": None}}, status=404
    )


@login_not_required
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks = health.readiness()
    failed = [check.name for check in checks if not check.ok]
    body = {
        "status": "ok" if not failed else "unavailable",
        "failed": failed,
        "runtime": next(health.runtime_name(c) for c in checks if c.name == "runtime"),
        "checks": {
            check.name: {"ok": check.ok, "detail": check.detail, "ms": check.ms} for check in checks
        },
    }
    return JsonResponse(body, status=503 if failed else 200)


class ArtifactDownloadApi(StudioAPIView):
    """Signed download links served through the studio ("presigned-ish").

    A service that decided the reader may see an artifact hands out a link signed with
    SECRET_KEY; the link works until it expires, for a signed-in member of the team whose
    area holds the key (anyone else gets 404, as for every read across teams), and streams
    the object from whichever backend holds it without loading it in memory.
    """

    @extend_schema(
        parameters=[
            OpenApiParameter(n, str, required=n != "filename")
            for n in ("key", "exp", "sig", "filename")
        ],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        operation_id="artifact_download",
    )
    def get(self, request: Request) -> FileResponse:
        key = verify_download(request.query_params, secret=settings.SECRET_KEY)
        team_of_key(request.user, key)  # a link passed on outside the team is worth nothing
        store = get_store()
        info = store.stat(key)
        filename = request.query_params.get("filename") or key.rsplit("/", 1)[-1]
        # FileResponse streams in blocks and closes the store's stream when it is done.
        response = FileResponse(
            store.open(key),
            as_attachment=True,
            filename=filename,
            content_type=mimetypes.guess_type(filename)[0] or "application/octet-stream",
        )
        response["Content-Length"] = str(info.size)
        return response


artifact_download = ArtifactDownloadApi.as_view()

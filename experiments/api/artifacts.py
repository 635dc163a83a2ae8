"""REST for a run's artifacts: list a folder, upload a file (the raw body), download it."""

from __future__ import annotations

import mimetypes
import posixpath

from django.http import FileResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from experiments import services
from experiments.api.common import request_run
from experiments.api.serializers import ArtifactEntrySerializer
from studio.api.views import StudioAPIView
from studio.artifacts.api import RawBodyParser, upload_body


class RunArtifactListApi(StudioAPIView):
    @extend_schema(
        responses=inline_serializer(
            "RunArtifactList", {"files": ArtifactEntrySerializer(many=True)}
        ),
        operation_id="api_v1_runs_artifacts_list",
    )
    def get(self, request: Request, run_id: str) -> Response:
        entries = services.run_artifact_list(
            run=request_run(request, run_id), path=request.query_params.get("path", "")
        )
        return Response({"files": ArtifactEntrySerializer(entries, many=True).data})


class RunArtifactApi(StudioAPIView):
    """PUT the raw body as the artifact at `path`; GET it back as a download."""

    parser_classes = [RawBodyParser]

    @extend_schema(request=bytes, responses={201: ArtifactEntrySerializer})
    def put(self, request: Request, run_id: str, path: str) -> Response:
        info = services.run_artifact_put(
            run=request_run(request, run_id),
            actor=request.user,
            path=path,
            data=upload_body(request),
        )
        return Response(
            {"path": path, "is_dir": False, "size": info.size}, status=status.HTTP_201_CREATED
        )

    @extend_schema(responses={(200, "*/*"): bytes})  # the type guessed from the path
    def get(self, request: Request, run_id: str, path: str) -> FileResponse:
        stream, info = services.run_artifact_open(run=request_run(request, run_id), path=path)
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        response = FileResponse(
            stream, content_type=content_type, as_attachment=True, filename=posixpath.basename(path)
        )
        response["Content-Length"] = str(info.size)
        return response

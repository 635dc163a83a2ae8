"""REST: upload and list a team's artifacts (downloads go through signed links)."""

from __future__ import annotations

from itertools import islice
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response

from studio.api.views import StudioAPIView
from studio.artifacts.services import artifact_list, artifact_put


class RawBodyParser(BaseParser):
    """Leaves the body unread so it streams into the store instead of into memory."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return stream


class ObjectSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    size = serializers.IntegerField()
    last_modified = serializers.DateTimeField()


class ArtifactUploadApi(StudioAPIView):
    parser_classes = [RawBodyParser]

    @extend_schema(
        request=bytes, responses={201: ObjectSerializer}, operation_id="artifacts_upload"
    )
    def put(self, request: Request, key: str) -> Response:
        uri, info = artifact_put(user=request.user, key=key, data=request.stream)
        return Response({**ObjectSerializer(info).data, "uri": uri}, status=status.HTTP_201_CREATED)


class ArtifactListApi(StudioAPIView):
    class FilterSerializer(serializers.Serializer[Any]):
        prefix = serializers.CharField()
        limit = serializers.IntegerField(required=False, default=1000, min_value=1, max_value=10000)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=ObjectSerializer(many=True),
        operation_id="artifacts_list",
    )
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        objects = islice(
            artifact_list(user=request.user, prefix=params.validated_data["prefix"]),
            params.validated_data["limit"],
        )
        return Response({"results": ObjectSerializer(list(objects), many=True).data})

"""REST: upload and list a team's artifacts (downloads go through signed links)."""

from __future__ import annotations

from itertools import islice
from typing import Any, BinaryIO, cast

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response

from studio.api.fields import Int64Field
from studio.api.schema import results_of
from studio.api.views import StudioAPIView
from studio.artifacts.services import artifact_list, artifact_put


def upload_body(request: Request) -> BinaryIO:
    """The uploaded bytes, as a stream. DRF leaves `stream` unset when no Content-Length came
    (an empty body, or a chunked one): the Django request then reads the body itself (it
    was a 500, `None.read()`)."""
    stream = request.stream
    return cast(BinaryIO, stream if stream is not None else request._request)


class RawBodyParser(BaseParser):
    """Leaves the body unread so it streams into the store instead of into memory."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return stream


class ObjectSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    size = Int64Field()
    last_modified = serializers.DateTimeField()


class UploadedSerializer(ObjectSerializer):
    uri = serializers.CharField(help_text="the object's URI in the store (s3://... or file://...)")


class ArtifactUploadApi(StudioAPIView):
    parser_classes = [RawBodyParser]

    @extend_schema(
        request=bytes, responses={201: UploadedSerializer}, operation_id="artifacts_upload"
    )
    def put(self, request: Request, key: str) -> Response:
        uri, info = artifact_put(user=request.user, key=key, data=upload_body(request))
        return Response({**ObjectSerializer(info).data, "uri": uri}, status=status.HTTP_201_CREATED)


class ArtifactListApi(StudioAPIView):
    class FilterSerializer(serializers.Serializer[Any]):
        prefix = serializers.CharField()
        limit = Int64Field(required=False, default=1000, min_value=1, max_value=10000)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=results_of(ObjectSerializer, "ObjectList"),
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

"""REST: upload, download and list a team's artifacts, by key or by URI.

A URI is the store's own (`file://...`, `s3://<store bucket>/...`) or the team's bucket
(`s3://<team bucket>/<key>`, studio.artifacts.buckets); `/artifacts/resolve` turns one into
the key the other routes take. The browser's downloads go through signed links instead
(studio.views)."""

from __future__ import annotations

from itertools import dropwhile, islice
from typing import Any, BinaryIO, cast
from urllib.parse import urlencode

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response

from studio.api.fields import Int64Field
from studio.api.views import StudioAPIView
from studio.artifacts import get_store
from studio.artifacts.buckets import bucket_uri
from studio.artifacts.services import (
    artifact_get,
    artifact_list,
    artifact_locate,
    artifact_put,
    team_of_key,
)
from studio.errors import ValidationError


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
    s3_uri = serializers.CharField(help_text="the object's URI in the team's bucket")


class ArtifactObjectApi(StudioAPIView):
    parser_classes = [RawBodyParser]

    @extend_schema(
        request=bytes, responses={201: UploadedSerializer}, operation_id="artifacts_upload"
    )
    def put(self, request: Request, key: str) -> Response:
        uri, info = artifact_put(user=request.user, key=key, data=upload_body(request))
        team = team_of_key(request.user, info.key)
        return Response(
            {**ObjectSerializer(info).data, "uri": uri, "s3_uri": bucket_uri(team, info.key)},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        operation_id="artifacts_download",
    )
    def get(self, request: Request, key: str) -> FileResponse:
        stream, info = artifact_get(user=request.user, key=key)
        # FileResponse streams in blocks and closes the store's stream when it is done.
        # Always bytes: the API documents one type, and clients save what they get.
        response = FileResponse(stream, content_type="application/octet-stream")
        response["Content-Length"] = str(info.size)
        return response


class ArtifactResolveApi(StudioAPIView):
    class FilterSerializer(serializers.Serializer[Any]):
        uri = serializers.CharField()

    @extend_schema(
        parameters=[FilterSerializer],
        responses=inline_serializer(
            "ResolvedUri",
            {
                "team": serializers.CharField(),
                "key": serializers.CharField(help_text="an object's key, or a folder's"),
                "uri": serializers.CharField(help_text="the store's own URI of the key"),
                "s3_uri": serializers.CharField(help_text="the key in the team's bucket"),
            },
        ),
        operation_id="artifacts_resolve",
    )
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        located = artifact_locate(user=request.user, uri=params.validated_data["uri"])
        return Response(
            {
                "team": located.team.slug,
                "key": located.key,
                "uri": located.uri,
                "s3_uri": located.s3_uri,
            }
        )


class ListedSerializer(ObjectSerializer):
    s3_uri = serializers.CharField(help_text="the object's URI in the team's bucket")


class ArtifactListApi(StudioAPIView):
    class FilterSerializer(serializers.Serializer[Any]):
        prefix = serializers.CharField(required=False, help_text="a folder's key")
        uri = serializers.CharField(required=False, help_text="or a folder's URI")
        after = serializers.CharField(required=False, help_text="only keys after this one")
        limit = Int64Field(required=False, default=1000, min_value=1, max_value=10000)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=inline_serializer(
            "ObjectList",
            {
                "results": ListedSerializer(many=True),
                "next": serializers.CharField(allow_null=True, help_text="the next page"),
            },
        ),
        operation_id="artifacts_list",
    )
    def get(self, request: Request) -> Response:
        """Objects under a folder, sorted by key, `limit` at a time: `next` (a link with
        `after`) is set while more follow. A URI naming one object lists that object."""
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        wanted = params.validated_data
        if bool(wanted.get("prefix")) == bool(wanted.get("uri")):
            raise ValidationError("prefix: give either a prefix or a uri", field="prefix")
        prefix = wanted.get("prefix") or artifact_locate(user=request.user, uri=wanted["uri"]).key
        listed = artifact_list(user=request.user, prefix=prefix)
        team = team_of_key(request.user, prefix.rstrip("/") + "/x")
        if "uri" in wanted and not wanted["uri"].endswith("/"):
            store = get_store()
            if store.exists(prefix):  # `ls s3://bucket/data.csv` shows the object itself
                listed = iter([store.stat(prefix)])
        after = wanted.get("after")
        if after:
            listed = dropwhile(lambda info: info.key <= after, listed)
        limit = wanted["limit"]
        objects = list(islice(listed, limit + 1))
        more = len(objects) > limit
        objects = objects[:limit]
        page = [
            {**ObjectSerializer(info).data, "s3_uri": bucket_uri(team, info.key)}
            for info in objects
        ]
        next_link = None
        if more:
            query = {key: value for key, value in request.query_params.items() if key != "after"}
            next_link = request.build_absolute_uri(
                request.path + "?" + urlencode({**query, "after": objects[-1].key})
            )
        return Response({"results": page, "next": next_link})

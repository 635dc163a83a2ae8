"""REST: the audit log, read-only. There is no route that changes or deletes an event."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from studio.api.fields import Int64Field
from studio.api.pagination import CursorPagination
from studio.api.views import StudioAPIView
from studio.audit.selectors import AuditFilter, audit_events_for_user


class AuditEventSerializer(serializers.Serializer[Any]):
    id = Int64Field()
    created_at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_name")
    action = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    object_repr = serializers.CharField()
    team = serializers.CharField(source="team.slug", allow_null=True, read_only=True)
    details = serializers.JSONField()


class AuditListApi(StudioAPIView):
    pagination_class = CursorPagination

    class FilterSerializer(serializers.Serializer[Any]):
        team = serializers.CharField(required=False)
        actor = serializers.CharField(required=False)
        action = serializers.CharField(required=False)
        object_type = serializers.CharField(required=False)
        object_id = serializers.CharField(required=False)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=AuditEventSerializer(many=True),
        operation_id="audit_list",
    )
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        events = audit_events_for_user(request.user, AuditFilter(**params.validated_data))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(AuditEventSerializer(page, many=True).data)

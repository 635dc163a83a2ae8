"""REST: a team's webhooks, their delivery log, and a test send.

Admins (team.manage) create, change, delete and test; every member (team.view) can list
webhooks, without their secrets, and read deliveries. Another team's webhooks are 404.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from studio.accounts import selectors as account_selectors
from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.accounts.services import require_permission
from studio.api.fields import Int64Field
from studio.api.pagination import CursorPagination
from studio.api.schema import results_of
from studio.api.views import StudioAPIView
from studio.webhooks import selectors, services
from studio.webhooks.models import Webhook


def _team(request: Request, slug: str, action: Action) -> Team:
    team = account_selectors.team_for_user(request.user, slug)
    require_permission(user=request.user, team=team, action=action)
    return team


class WebhookSerializer(serializers.Serializer[Any]):
    id = Int64Field()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class CreatedWebhookSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="Shown in this response only.")


class AttemptSerializer(serializers.Serializer[Any]):
    number = Int64Field()
    at = serializers.DateTimeField()
    status_code = Int64Field(allow_null=True)
    error = serializers.CharField()
    duration_ms = Int64Field()


class DeliverySerializer(serializers.Serializer[Any]):
    id = Int64Field()
    event_id = serializers.UUIDField()
    event_type = serializers.CharField()
    payload = serializers.JSONField()
    status = serializers.CharField()
    attempts = Int64Field()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_status_code = Int64Field(allow_null=True)
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    attempt_log = AttemptSerializer(many=True)


class WebhookListApi(StudioAPIView):
    class InputSerializer(serializers.Serializer[Any]):
        # Plain strings: the service validates them and names the field in its 400.
        url = serializers.CharField(trim_whitespace=True)
        events = serializers.ListField(child=serializers.CharField(), allow_empty=True)
        secret = serializers.CharField(required=False)

        class Meta:
            ref_name = "WebhookCreateInput"  # "Input" alone collides with other apps' schemas

    @extend_schema(
        responses=results_of(WebhookSerializer, "WebhookList"), operation_id="webhooks_list"
    )
    def get(self, request: Request, team: str) -> Response:
        team_obj = _team(request, team, Action.VIEW)
        webhooks = selectors.webhooks_of_team(team_obj)
        return Response({"results": WebhookSerializer(webhooks, many=True).data})

    @extend_schema(
        request=InputSerializer,
        responses={201: CreatedWebhookSerializer},
        operation_id="webhooks_create",
    )
    def post(self, request: Request, team: str) -> Response:
        team_obj = _team(request, team, Action.MANAGE_TEAM)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        webhook, secret = services.webhook_create(
            team=team_obj,
            actor=request.user,
            url=data.validated_data["url"],
            events=data.validated_data["events"],
            secret=data.validated_data.get("secret"),
        )
        # The secret appears in this response and nowhere else.
        return Response(
            {**WebhookSerializer(webhook).data, "secret": secret}, status=status.HTTP_201_CREATED
        )


class WebhookDetailApi(StudioAPIView):
    class InputSerializer(serializers.Serializer[Any]):
        url = serializers.CharField(required=False)
        events = serializers.ListField(
            child=serializers.CharField(), required=False, allow_empty=True
        )
        active = serializers.BooleanField(required=False)

        class Meta:
            ref_name = "WebhookUpdateInput"

    def _webhook(self, request: Request, team: str, webhook_id: int, action: Action) -> Webhook:
        return selectors.webhook_of_team(_team(request, team, action), webhook_id)

    @extend_schema(responses=WebhookSerializer, operation_id="webhooks_get")
    def get(self, request: Request, team: str, webhook_id: int) -> Response:
        webhook = self._webhook(request, team, webhook_id, Action.VIEW)
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(
        request=InputSerializer, responses=WebhookSerializer, operation_id="webhooks_update"
    )
    def patch(self, request: Request, team: str, webhook_id: int) -> Response:
        webhook = self._webhook(request, team, webhook_id, Action.MANAGE_TEAM)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        webhook = services.webhook_update(
            webhook=webhook,
            actor=request.user,
            url=data.validated_data.get("url"),
            events=data.validated_data.get("events"),
            active=data.validated_data.get("active"),
        )
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(responses={204: None}, operation_id="webhooks_delete")
    def delete(self, request: Request, team: str, webhook_id: int) -> Response:
        webhook = self._webhook(request, team, webhook_id, Action.MANAGE_TEAM)
        services.webhook_delete(webhook=webhook, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveriesApi(StudioAPIView):
    pagination_class = CursorPagination

    @extend_schema(responses=DeliverySerializer(many=True), operation_id="webhooks_deliveries")
    def get(self, request: Request, team: str, webhook_id: int) -> Response:
        team_obj = _team(request, team, Action.VIEW)
        webhook = selectors.webhook_of_team(team_obj, webhook_id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            selectors.deliveries_of_webhook(webhook), request, view=self
        )
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)


class WebhookTestApi(StudioAPIView):
    @extend_schema(request=None, responses={202: DeliverySerializer}, operation_id="webhooks_test")
    def post(self, request: Request, team: str, webhook_id: int) -> Response:
        team_obj = _team(request, team, Action.MANAGE_TEAM)
        webhook = selectors.webhook_of_team(team_obj, webhook_id)
        delivery = services.webhook_test_send(webhook=webhook, actor=request.user)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

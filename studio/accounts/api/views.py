"""REST: who am I, teams and members, API tokens."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from studio.accounts import selectors, services
from studio.accounts.buckets import team_bucket
from studio.accounts.models import TokenPurpose
from studio.accounts.roles import Action, Role
from studio.api.fields import Int64Field
from studio.api.schema import results_of
from studio.api.views import StudioAPIView
from studio.errors import ValidationError


class MeApi(StudioAPIView):
    class OutputSerializer(serializers.Serializer[Any]):
        username = serializers.CharField()
        teams = serializers.SerializerMethodField()

        def get_teams(self, user: Any) -> list[dict[str, str]]:
            # `bucket`: the team's area of the artifact store, as `s3://<bucket>/<key>`.
            return [
                {
                    "slug": m.team.slug,
                    "name": m.team.name,
                    "role": m.role,
                    "bucket": team_bucket(m.team),
                }
                for m in selectors.memberships_for_user(user)
            ]

    @extend_schema(responses=OutputSerializer, operation_id="me")
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(request.user).data)


class MemberSerializer(serializers.Serializer[Any]):
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


class TeamMembersApi(StudioAPIView):
    class InputSerializer(serializers.Serializer[Any]):
        username = serializers.CharField()
        role = serializers.ChoiceField(choices=Role.choices)

    @extend_schema(
        responses=results_of(MemberSerializer, "MemberList"), operation_id="team_members_list"
    )
    def get(self, request: Request, team: str) -> Response:
        team_obj = selectors.team_for_user(request.user, team)
        services.require_permission(user=request.user, team=team_obj, action=Action.VIEW)
        members = selectors.members_of_team(team_obj)
        return Response({"results": MemberSerializer(members, many=True).data})

    @extend_schema(
        request=InputSerializer, responses={201: MemberSerializer}, operation_id="team_members_set"
    )
    def post(self, request: Request, team: str) -> Response:
        team_obj = selectors.team_for_user(request.user, team)
        services.require_permission(user=request.user, team=team_obj, action=Action.MANAGE_TEAM)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = get_user_model().objects.filter(username=data.validated_data["username"]).first()
        if user is None:
            raise ValidationError("username: no such user", field="username")
        membership = services.membership_set(
            team=team_obj, user=user, role=data.validated_data["role"], actor=request.user
        )
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


class TokenSerializer(serializers.Serializer[Any]):
    id = Int64Field()
    name = serializers.CharField()
    prefix = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    purpose = serializers.ChoiceField(choices=TokenPurpose.choices)


class CreatedTokenSerializer(TokenSerializer):
    token = serializers.CharField(help_text="the secret: shown in this answer only, ever")


class TokenListApi(StudioAPIView):
    class InputSerializer(serializers.Serializer[Any]):
        name = serializers.CharField(max_length=100)
        expires_at = serializers.DateTimeField(required=False, allow_null=True)

    @extend_schema(responses=results_of(TokenSerializer, "TokenList"), operation_id="tokens_list")
    def get(self, request: Request) -> Response:
        tokens = selectors.tokens_for_user(request.user)
        return Response({"results": TokenSerializer(tokens, many=True).data})

    @extend_schema(
        request=InputSerializer,
        responses={201: CreatedTokenSerializer},
        operation_id="tokens_create",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, secret = services.token_create(
            user=request.user,  # type: ignore[arg-type]
            name=data.validated_data["name"],
            expires_at=data.validated_data.get("expires_at"),
            actor=request.user,
        )
        # The secret appears in this response and nowhere else, ever.
        return Response(
            {**TokenSerializer(token).data, "token": secret}, status=status.HTTP_201_CREATED
        )


class TokenDetailApi(StudioAPIView):
    @extend_schema(responses={200: TokenSerializer}, operation_id="tokens_revoke")
    def delete(self, request: Request, token_id: int) -> Response:
        token = get_object_or_404(selectors.tokens_for_user(request.user), pk=token_id)
        token = services.token_revoke(token=token, actor=request.user)
        return Response(TokenSerializer(token).data)

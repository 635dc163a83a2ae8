"""REST for the model registry: groups, packages (register, describe, lineage), the approval
decisions, the reviewer's inbox, and the team's self-approval setting."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.models import Job
from jobs.selectors import jobs_for_user
from registry import selectors
from registry.models import ApprovalVote, ModelPackage, ModelPackageGroup
from registry.services.approval import package_decide
from registry.services.registration import (
    ExternalArtifact,
    InferenceSpec,
    group_create,
    package_register_external,
    package_register_from_job,
)
from studio.accounts.selectors import team_for_user
from studio.accounts.services import team_set_self_approval
from studio.api.fields import Int64Field
from studio.api.pagination import CursorPagination
from studio.api.schema import results_of
from studio.api.transitions import TransitionSerializer
from studio.api.views import StudioAPIView
from studio.errors import NotFound, ValidationError

INBOX_LIMIT = 200


class GroupPagination(CursorPagination):
    ordering = "name"  # unique within the team the list is filtered to


# --- output ---------------------------------------------------------------------------------


class VoteSerializer(serializers.Serializer[Any]):
    decision = serializers.CharField()
    comment = serializers.CharField()
    actor = serializers.CharField(source="actor.username")
    round = Int64Field()
    at = serializers.DateTimeField()


class PackageTransitionSerializer(TransitionSerializer):
    """The shape of every transition log; `comment` is `message` (the name this API gave
    the decider's reason first)."""

    class Meta:
        ref_name = "PackageTransition"  # the schema's component; `Transition` alone is ambiguous

    comment = serializers.CharField(source="message")


class PackageSerializer(serializers.Serializer[Any]):
    id = Int64Field()
    team = serializers.CharField(source="group.team.slug")
    group = serializers.CharField(source="group.name")
    version = Int64Field()
    description = serializers.CharField()
    approval_status = serializers.CharField()
    metrics = serializers.DictField()
    external = serializers.BooleanField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    status_changed_at = serializers.DateTimeField(allow_null=True)
    approvals = serializers.SerializerMethodField()
    approvals_required = Int64Field(source="group.approvals_required")
    votes = serializers.SerializerMethodField()
    votes_decided = serializers.SerializerMethodField()

    def get_approvals(self, package: ModelPackage) -> int:
        return selectors.package_votes(package).approvals

    @extend_schema_field(VoteSerializer(many=True))
    def get_votes(self, package: ModelPackage) -> list[dict[str, Any]]:
        return list(VoteSerializer(selectors.package_votes(package).votes, many=True).data)

    @extend_schema_field(
        serializers.BooleanField(
            help_text="true: `votes` and `approvals` are those of the round that gave the "
            "package its status; false: those of the round still open"
        )
    )
    def get_votes_decided(self, package: ModelPackage) -> bool:
        return selectors.package_votes(package).decided


class PackageDetailSerializer(PackageSerializer):
    artifact_uri = serializers.CharField()
    # The content the package was registered (and approved) with; "" for a legacy package
    # that could not be pinned, which cannot be deployed.
    artifact_sha256 = serializers.CharField()
    artifact_size = Int64Field(allow_null=True)
    image = serializers.CharField()
    framework = serializers.CharField()
    entry_point = serializers.CharField()
    content_types = serializers.ListField(child=serializers.CharField())
    response_types = serializers.ListField(child=serializers.CharField())
    lineage = serializers.SerializerMethodField()
    transitions = PackageTransitionSerializer(many=True)

    def get_lineage(self, package: ModelPackage) -> dict[str, Any]:
        job = package.source_job
        return {
            "job": None if job is None else {"id": job.pk, "name": job.name},
            "run_id": package.source_run_id,
            "hyperparameters": package.hyperparameters,
            "input_data": package.input_data,
            "training_image": package.training_image,
            "image_digest": package.image_digest,
            "artifact_uri": package.artifact_uri,
        }


class GroupSerializer(serializers.Serializer[Any]):
    id = Int64Field()
    team = serializers.CharField(source="team.slug")
    name = serializers.CharField()
    description = serializers.CharField()
    approvals_required = Int64Field()
    package_count = Int64Field(default=0)
    approved_count = Int64Field(default=0)
    latest_version = Int64Field(default=None, allow_null=True)
    latest_status = serializers.CharField(default=None, allow_null=True)
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()


class GroupDetailSerializer(GroupSerializer):
    packages = serializers.SerializerMethodField()

    def get_packages(self, group: ModelPackageGroup) -> list[dict[str, Any]]:
        return list(PackageSerializer(self.context["packages"], many=True).data)


class DecisionSerializer(serializers.Serializer[Any]):
    package = PackageDetailSerializer()
    changed = serializers.BooleanField()
    approvals = Int64Field()
    # DRF pops declared fields off the class, so this name does not shadow Field.required.
    required = Int64Field()  # type: ignore[assignment]


def _packages(queryset: QuerySet[ModelPackage]) -> QuerySet[ModelPackage]:
    return queryset.select_related("group__team", "created_by", "source_job").prefetch_related(
        Prefetch("votes", queryset=ApprovalVote.objects.select_related("actor"))
    )


def _package(request: Request, team: str, name: str, version: int) -> ModelPackage:
    package = selectors.package_for_user(request.user, team=team, group=name, version=version)
    return _packages(ModelPackage.objects.filter(pk=package.pk)).prefetch_related("transitions")[0]


# --- groups ---------------------------------------------------------------------------------


class GroupListApi(StudioAPIView):
    pagination_class = GroupPagination

    class InputSerializer(serializers.Serializer[Any]):
        name = serializers.CharField(max_length=63)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        approvals_required = Int64Field(required=False, default=1)

    @extend_schema(responses=GroupSerializer(many=True), operation_id="model_groups_list")
    def get(self, request: Request, team: str) -> Response:
        team_obj = team_for_user(request.user, team)
        groups = selectors.groups_with_latest(
            selectors.groups_for_user(request.user)
            .filter(team=team_obj)
            .select_related("created_by")
        )
        paginator = GroupPagination()
        page = paginator.paginate_queryset(groups, request, view=self)
        return paginator.get_paginated_response(GroupSerializer(page, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: GroupSerializer},
        operation_id="model_groups_create",
    )
    def post(self, request: Request, team: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        group = group_create(
            team=team_for_user(request.user, team), actor=request.user, **data.validated_data
        )
        return Response(GroupSerializer(group).data, status=status.HTTP_201_CREATED)


class GroupDetailApi(StudioAPIView):
    @extend_schema(responses=GroupDetailSerializer, operation_id="model_groups_describe")
    def get(self, request: Request, team: str, name: str) -> Response:
        group = (
            selectors.groups_with_latest(
                selectors.groups_for_user(request.user).filter(team__slug=team, name=name)
            )
            .select_related("created_by")
            .first()
        )
        if group is None:
            raise NotFound(f"model group {name!r} not found", field="group")
        packages = _packages(group.packages.order_by("-version"))
        return Response(GroupDetailSerializer(group, context={"packages": packages}).data)


# --- packages -------------------------------------------------------------------------------


class PackageRegisterApi(StudioAPIView):
    class InputSerializer(serializers.Serializer[Any]):
        job = serializers.CharField(required=False, allow_blank=True, default="")
        artifact_uri = serializers.CharField(required=False, allow_blank=True, default="")
        metrics = serializers.DictField(required=False, default=dict)
        framework = serializers.CharField(required=False, allow_blank=True, default="")
        image = serializers.CharField(required=False, allow_blank=True, default="")
        entry_point = serializers.CharField(required=False, allow_blank=True, default="")
        content_types = serializers.ListField(child=serializers.CharField(), required=False)
        response_types = serializers.ListField(child=serializers.CharField(), required=False)
        description = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(
        request=InputSerializer,
        responses={201: PackageDetailSerializer},
        operation_id="model_packages_register",
    )
    def post(self, request: Request, team: str, name: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        group = selectors.group_for_user(request.user, team=team, name=name)
        if bool(values["job"]) == bool(values["artifact_uri"]):
            raise ValidationError(
                "job: give either a job (id or name) or an artifact_uri", field="job"
            )
        if values["job"] and values["metrics"]:
            raise ValidationError(
                "metrics: a job's package takes its run's metrics; metrics go with artifact_uri",
                field="metrics",
            )
        inference = InferenceSpec(
            framework=values["framework"],
            image=values["image"],
            entry_point=values["entry_point"],
            **{k: values[k] for k in ("content_types", "response_types") if k in values},
        )
        if values["job"]:
            package = package_register_from_job(
                group=group,
                job=self._job(request, group, values["job"]),
                actor=request.user,
                inference=inference,
                description=values["description"],
            )
        else:
            package = package_register_external(
                group=group,
                actor=request.user,
                artifact=ExternalArtifact(values["artifact_uri"], values["metrics"]),
                inference=inference,
                description=values["description"],
            )
        return Response(
            PackageDetailSerializer(_package(request, team, name, package.version)).data,
            status=status.HTTP_201_CREATED,
        )

    @staticmethod
    def _job(request: Request, group: ModelPackageGroup, ref: str) -> Job:
        """A job of the user's teams by id, or of the group's team by exact name; another
        team's job is reported like a missing one (the service checks the team again)."""
        jobs = jobs_for_user(request.user)
        job = (
            jobs.filter(pk=int(ref)).first()
            if ref.isdigit()
            else jobs.filter(team=group.team, name=ref).first()
        )
        if job is None:
            raise NotFound(f"job {ref!r} not found", field="job")
        return job


class PackageDetailApi(StudioAPIView):
    @extend_schema(responses=PackageDetailSerializer, operation_id="model_packages_describe")
    def get(self, request: Request, team: str, name: str, version: int) -> Response:
        return Response(PackageDetailSerializer(_package(request, team, name, version)).data)


class PackageLineageApi(StudioAPIView):
    @extend_schema(responses={200: dict}, operation_id="model_packages_lineage")
    def get(self, request: Request, team: str, name: str, version: int) -> Response:
        package = selectors.package_for_user(request.user, team=team, group=name, version=version)
        return Response(selectors.package_lineage(package))


class PackageDecisionApi(StudioAPIView):
    """POST .../approve or .../reject (the decision comes from the URL)."""

    decision = ""

    class InputSerializer(serializers.Serializer[Any]):
        comment = serializers.CharField(max_length=2000, help_text="why: shown to the team")

    @extend_schema(
        request=InputSerializer, responses=DecisionSerializer, operation_id="model_packages_decide"
    )
    def post(self, request: Request, team: str, name: str, version: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        package = selectors.package_for_user(request.user, team=team, group=name, version=version)
        result = package_decide(
            package=package,
            actor=request.user,
            decision=self.decision,
            comment=data.validated_data["comment"],
        )
        return Response(
            DecisionSerializer(
                {
                    "package": _package(request, team, name, version),
                    "changed": result.changed,
                    "approvals": result.approvals,
                    "required": result.required,
                }
            ).data
        )


class PackageApproveApi(PackageDecisionApi):
    decision = "approve"

    @extend_schema(
        request=PackageDecisionApi.InputSerializer,
        responses=DecisionSerializer,
        operation_id="model_packages_approve",
    )
    def post(self, request: Request, team: str, name: str, version: int) -> Response:
        return super().post(request, team, name, version)


class PackageRejectApi(PackageDecisionApi):
    decision = "reject"

    @extend_schema(
        request=PackageDecisionApi.InputSerializer,
        responses=DecisionSerializer,
        operation_id="model_packages_reject",
    )
    def post(self, request: Request, team: str, name: str, version: int) -> Response:
        return super().post(request, team, name, version)


class AwaitingReviewApi(StudioAPIView):
    @extend_schema(
        responses=results_of(PackageSerializer, "PackageList"),
        operation_id="model_packages_awaiting_review",
    )
    def get(self, request: Request) -> Response:
        packages = _packages(selectors.packages_awaiting_review(request.user))[:INBOX_LIMIT]
        return Response({"results": PackageSerializer(packages, many=True).data})


# --- team settings --------------------------------------------------------------------------


class TeamSettingsApi(StudioAPIView):
    class InputSerializer(serializers.Serializer[Any]):
        allow_self_approval = serializers.BooleanField()

    class OutputSerializer(serializers.Serializer[Any]):
        team = serializers.CharField(source="slug")
        allow_self_approval = serializers.BooleanField()

    @extend_schema(
        request=InputSerializer, responses=OutputSerializer, operation_id="teams_settings_update"
    )
    def patch(self, request: Request, team: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        updated = team_set_self_approval(
            team=team_for_user(request.user, team),
            allowed=data.validated_data["allow_self_approval"],
            actor=request.user,
        )
        return Response(self.OutputSerializer(updated).data)

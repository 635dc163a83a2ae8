"""REST for runs: create, search (MLflow's syntax), read, update, delete and restore, and
logging params, tags and batches of metrics, params and tags."""

from __future__ import annotations

from typing import Any, Literal

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from experiments import selectors, services
from experiments.api.common import BatchResultSerializer, check_body_size, request_run, run_data
from experiments.api.serializers import RunSerializer
from experiments.models import Experiment
from experiments.wire import metrics_from_json, pairs_from_json
from studio.api.fields import Int64Field
from studio.api.views import StudioAPIView
from studio.errors import ValidationError

# --- runs -----------------------------------------------------------------------------------


class SearchSerializer(serializers.Serializer[Any]):
    filter = serializers.CharField(required=False, allow_blank=True, default="")
    order_by = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    view = serializers.ChoiceField(
        choices=selectors.ViewType.values, required=False, default="ACTIVE_ONLY"
    )
    max_results = Int64Field(
        required=False, default=100, min_value=1, max_value=selectors.MAX_SEARCH_RESULTS
    )
    page_token = serializers.CharField(required=False, allow_blank=True, default="")


class RunPageSerializer(serializers.Serializer[Any]):
    runs = RunSerializer(many=True)
    next_page_token = serializers.CharField(allow_null=True)


def _search(request: Request, experiment_ids: list[int], data: dict[str, Any]) -> Response:
    page = selectors.runs_search(
        request.user,
        experiment_ids=experiment_ids,
        filter_string=data["filter"],
        order_by=data["order_by"],
        view=data["view"],
        max_results=data["max_results"],
        page_token=data["page_token"] or None,
    )
    return Response(
        {
            "runs": RunSerializer(page.items, many=True).data,
            "next_page_token": page.next_page_token,
        }
    )


class ExperimentRunsApi(StudioAPIView):
    """The experiment's runs, filtered and ordered with MLflow's search syntax."""

    @extend_schema(parameters=[SearchSerializer], responses=RunPageSerializer)
    def get(self, request: Request, experiment_id: int) -> Response:
        experiment = selectors.experiment_for_user(request.user, experiment_id)
        query = request.query_params.copy()
        params = SearchSerializer(data={**query.dict(), "order_by": query.getlist("order_by")})
        params.is_valid(raise_exception=True)
        return _search(request, [experiment.pk], params.validated_data)


class RunSearchApi(StudioAPIView):
    class InputSerializer(SearchSerializer):
        experiment_ids = serializers.ListField(child=Int64Field(), min_length=1)

    @extend_schema(request=InputSerializer, responses=RunPageSerializer)
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _search(request, data.validated_data["experiment_ids"], data.validated_data)


class RunListApi(StudioAPIView):
    class InputSerializer(serializers.Serializer[Any]):
        experiment_id = Int64Field()
        name = serializers.CharField(required=False, allow_blank=True, default="")
        tags = serializers.DictField(
            child=serializers.CharField(allow_blank=True), required=False, default=dict
        )
        start_time = Int64Field(required=False, min_value=0)

    @extend_schema(request=InputSerializer, responses={201: RunSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        experiment: Experiment = selectors.experiment_for_user(
            request.user, data.validated_data["experiment_id"]
        )
        run = services.run_create(
            experiment=experiment,
            name=data.validated_data["name"],
            tags=data.validated_data["tags"],
            start_time=data.validated_data.get("start_time"),
            actor=request.user,
        )
        return Response(run_data(run.run_uuid, request), status=status.HTTP_201_CREATED)


class RunDetailApi(StudioAPIView):
    class UpdateSerializer(serializers.Serializer[Any]):
        name = serializers.CharField(required=False, allow_blank=True)
        status = serializers.CharField(required=False)
        end_time = Int64Field(required=False, min_value=0)

    @extend_schema(responses=RunSerializer)
    def get(self, request: Request, run_id: str) -> Response:
        return Response(RunSerializer(request_run(request, run_id)).data)

    @extend_schema(request=UpdateSerializer, responses=RunSerializer)
    def patch(self, request: Request, run_id: str) -> Response:
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.run_update(
            run=request_run(request, run_id),
            actor=request.user,
            name=data.validated_data.get("name"),
            status=data.validated_data.get("status"),
            end_time=data.validated_data.get("end_time"),
        )
        return Response(run_data(run_id, request))

    @extend_schema(responses={200: RunSerializer})
    def delete(self, request: Request, run_id: str) -> Response:
        services.run_delete(run=request_run(request, run_id), actor=request.user)
        return Response(run_data(run_id, request))


class RunRestoreApi(StudioAPIView):
    @extend_schema(request=None, responses=RunSerializer)
    def post(self, request: Request, run_id: str) -> Response:
        services.run_restore(run=request_run(request, run_id), actor=request.user)
        return Response(run_data(run_id, request))


class RunBatchApi(StudioAPIView):
    """Metrics, params and tags in one request: all written, or (on any error) none."""

    class InputSerializer(serializers.Serializer[Any]):
        metrics = serializers.ListField(child=serializers.DictField(), required=False)
        params = serializers.JSONField(required=False, help_text="{key: value} or [{key, value}]")
        tags = serializers.JSONField(required=False, help_text="{key: value} or [{key, value}]")

    @extend_schema(request=InputSerializer, responses=BatchResultSerializer)
    def post(self, request: Request, run_id: str) -> Response:
        check_body_size(request)
        if not isinstance(request.data, dict):
            raise ValidationError("body: a JSON object is required", field="body")
        result = services.run_log_batch(
            run=request_run(request, run_id, details=False),
            actor=request.user,
            metrics=metrics_from_json(request.data.get("metrics")),
            params=pairs_from_json(request.data.get("params"), field="params"),
            tags=pairs_from_json(request.data.get("tags"), field="tags"),
        )
        return Response(BatchResultSerializer(result).data)


def _log_pairs(request: Request, run_id: str, kind: Literal["params", "tags"]) -> Response:
    """`{kind: {key: value} | [{key, value}]}` logged to the run in one batch."""
    check_body_size(request)
    body = request.data if isinstance(request.data, dict) else {}
    pairs = pairs_from_json(body.get(kind), field=kind)
    result = services.run_log_batch(
        run=request_run(request, run_id, details=False),
        actor=request.user,
        params=pairs if kind == "params" else (),
        tags=pairs if kind == "tags" else (),
    )
    return Response(BatchResultSerializer(result).data)


class RunParamsApi(StudioAPIView):
    class InputSerializer(serializers.Serializer[Any]):
        params = serializers.JSONField(help_text="{key: value} or [{key, value}]")

    @extend_schema(request=InputSerializer, responses=BatchResultSerializer)
    def post(self, request: Request, run_id: str) -> Response:
        return _log_pairs(request, run_id, "params")


class RunTagsApi(StudioAPIView):
    class InputSerializer(serializers.Serializer[Any]):
        tags = serializers.JSONField(help_text="{key: value} or [{key, value}]")

    @extend_schema(request=InputSerializer, responses=BatchResultSerializer)
    def post(self, request: Request, run_id: str) -> Response:
        return _log_pairs(request, run_id, "tags")


class RunTagDetailApi(StudioAPIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, run_id: str, key: str) -> Response:
        services.run_delete_tag(run=request_run(request, run_id), actor=request.user, key=key)
        return Response(status=status.HTTP_204_NO_CONTENT)

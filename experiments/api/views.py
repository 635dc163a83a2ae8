"""REST for experiment tracking: experiments, runs, params, tags, metrics (batches of up to
1,000 points), search, metric history (full or downsampled), and run artifacts."""

from __future__ import annotations

import json
import mimetypes
import posixpath
from typing import Any, Literal

from django.http import FileResponse, HttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from experiments import selectors, services
from experiments.api.serializers import (
    ArtifactEntrySerializer,
    ExperimentSerializer,
    RunSerializer,
)
from experiments.models import Experiment, Run
from experiments.selectors import HistoryPoint, MetricBucket
from experiments.validation import MAX_BATCH_REQUEST_BYTES, json_float
from experiments.wire import metrics_from_json, pairs_from_json, points_json
from studio.accounts.models import Team
from studio.accounts.selectors import default_team_for_user, team_for_user
from studio.api.fields import Int64Field
from studio.api.pagination import CursorPagination
from studio.api.views import StudioAPIView
from studio.artifacts.api import RawBodyParser, upload_body
from studio.errors import ValidationError


def _team(request: Request, slug: str | None) -> Team:
    team = team_for_user(request.user, slug) if slug else default_team_for_user(request.user)
    if team is None:
        raise ValidationError("team: you are not a member of any team", field="team")
    return team


def _run(request: Request, run_id: str, *, details: bool = True) -> Run:
    return selectors.run_for_user(request.user, run_id, details=details)


def _run_data(run_id: str, request: Request) -> dict[str, Any]:
    """The run as it is now (re-read, so that prefetched params, tags and metrics are fresh)."""
    return dict(RunSerializer(_run(request, run_id)).data)


def _check_body_size(request: Request) -> None:
    """MLflow's 1 MB limit for one logging request, checked before the body is parsed."""
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > MAX_BATCH_REQUEST_BYTES:
        raise ValidationError(
            f"body: a logging request holds at most {MAX_BATCH_REQUEST_BYTES} bytes, "
            f"got {length}; split it across several requests",
            field="body",
        )


class ExperimentPagination(CursorPagination):
    ordering = "-created_at"


# --- experiments ----------------------------------------------------------------------------


class ExperimentListApi(StudioAPIView):
    pagination_class = ExperimentPagination

    class FilterSerializer(serializers.Serializer[Any]):
        team = serializers.CharField(required=False)
        view = serializers.ChoiceField(
            choices=selectors.ViewType.values, required=False, default="ACTIVE_ONLY"
        )
        name = serializers.CharField(required=False, help_text="exactly this name")

    class InputSerializer(serializers.Serializer[Any]):
        team = serializers.CharField(required=False)
        name = serializers.CharField(max_length=500)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        tags = serializers.DictField(
            child=serializers.CharField(allow_blank=True), required=False, default=dict
        )

    @extend_schema(parameters=[FilterSerializer], responses=ExperimentSerializer(many=True))
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        team = _team(request, params.validated_data.get("team"))
        experiments = selectors.experiments_for_user(request.user, team=team).filter(
            **selectors.lifecycle_filter(params.validated_data["view"])
        )
        if "name" in params.validated_data:
            # The SDK and the CLI find an experiment by name with this.
            experiments = experiments.filter(name=params.validated_data["name"])
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(experiments, request, view=self)
        return paginator.get_paginated_response(ExperimentSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: ExperimentSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        experiment = services.experiment_create(
            team=_team(request, data.validated_data.get("team")),
            name=data.validated_data["name"],
            description=data.validated_data["description"],
            tags=data.validated_data["tags"],
            actor=request.user,
        )
        fresh = selectors.experiment_for_user(request.user, experiment.pk)
        return Response(ExperimentSerializer(fresh).data, status=status.HTTP_201_CREATED)


class ExperimentDetailApi(StudioAPIView):
    class UpdateSerializer(serializers.Serializer[Any]):
        name = serializers.CharField(required=False, max_length=500)
        description = serializers.CharField(required=False, allow_blank=True)
        tags = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)

    @extend_schema(responses=ExperimentSerializer)
    def get(self, request: Request, experiment_id: int) -> Response:
        experiment = selectors.experiment_for_user(request.user, experiment_id)
        return Response(ExperimentSerializer(experiment).data)

    @extend_schema(request=UpdateSerializer, responses=ExperimentSerializer)
    def patch(self, request: Request, experiment_id: int) -> Response:
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        experiment = selectors.experiment_for_user(request.user, experiment_id)
        services.experiment_update(
            experiment=experiment,
            actor=request.user,
            name=data.validated_data.get("name"),
            description=data.validated_data.get("description"),
        )
        if data.validated_data.get("tags"):
            services.experiment_set_tags(
                experiment=experiment, actor=request.user, tags=data.validated_data["tags"]
            )
        fresh = selectors.experiment_for_user(request.user, experiment_id)
        return Response(ExperimentSerializer(fresh).data)

    @extend_schema(responses={200: ExperimentSerializer})
    def delete(self, request: Request, experiment_id: int) -> Response:
        experiment = selectors.experiment_for_user(request.user, experiment_id)
        services.experiment_delete(experiment=experiment, actor=request.user)
        fresh = selectors.experiment_for_user(request.user, experiment_id)
        return Response(ExperimentSerializer(fresh).data)


class ExperimentRestoreApi(StudioAPIView):
    @extend_schema(request=None, responses=ExperimentSerializer)
    def post(self, request: Request, experiment_id: int) -> Response:
        experiment = selectors.experiment_for_user(request.user, experiment_id)
        services.experiment_restore(experiment=experiment, actor=request.user)
        fresh = selectors.experiment_for_user(request.user, experiment_id)
        return Response(ExperimentSerializer(fresh).data)


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
        return Response(_run_data(run.run_uuid, request), status=status.HTTP_201_CREATED)


class RunDetailApi(StudioAPIView):
    class UpdateSerializer(serializers.Serializer[Any]):
        name = serializers.CharField(required=False, allow_blank=True)
        status = serializers.CharField(required=False)
        end_time = Int64Field(required=False, min_value=0)

    @extend_schema(responses=RunSerializer)
    def get(self, request: Request, run_id: str) -> Response:
        return Response(RunSerializer(_run(request, run_id)).data)

    @extend_schema(request=UpdateSerializer, responses=RunSerializer)
    def patch(self, request: Request, run_id: str) -> Response:
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.run_update(
            run=_run(request, run_id),
            actor=request.user,
            name=data.validated_data.get("name"),
            status=data.validated_data.get("status"),
            end_time=data.validated_data.get("end_time"),
        )
        return Response(_run_data(run_id, request))

    @extend_schema(responses={200: RunSerializer})
    def delete(self, request: Request, run_id: str) -> Response:
        services.run_delete(run=_run(request, run_id), actor=request.user)
        return Response(_run_data(run_id, request))


class RunRestoreApi(StudioAPIView):
    @extend_schema(request=None, responses=RunSerializer)
    def post(self, request: Request, run_id: str) -> Response:
        services.run_restore(run=_run(request, run_id), actor=request.user)
        return Response(_run_data(run_id, request))


class BatchResultSerializer(serializers.Serializer[Any]):
    metrics = Int64Field()
    params = Int64Field()
    tags = Int64Field()


class RunBatchApi(StudioAPIView):
    """Metrics, params and tags in one request: all written, or (on any error) none."""

    class InputSerializer(serializers.Serializer[Any]):
        metrics = serializers.ListField(child=serializers.DictField(), required=False)
        params = serializers.JSONField(required=False, help_text="{key: value} or [{key, value}]")
        tags = serializers.JSONField(required=False, help_text="{key: value} or [{key, value}]")

    @extend_schema(request=InputSerializer, responses=BatchResultSerializer)
    def post(self, request: Request, run_id: str) -> Response:
        _check_body_size(request)
        if not isinstance(request.data, dict):
            raise ValidationError("body: a JSON object is required", field="body")
        result = services.run_log_batch(
            run=_run(request, run_id, details=False),
            actor=request.user,
            metrics=metrics_from_json(request.data.get("metrics")),
            params=pairs_from_json(request.data.get("params"), field="params"),
            tags=pairs_from_json(request.data.get("tags"), field="tags"),
        )
        return Response(BatchResultSerializer(result).data)


class RunMetricsApi(StudioAPIView):
    """GET: each metric's summary. POST: log up to 1,000 points."""

    class InputSerializer(serializers.Serializer[Any]):
        metrics = serializers.ListField(child=serializers.DictField())

    class OutputSerializer(serializers.Serializer[Any]):
        metrics = serializers.DictField(
            child=serializers.DictField(),
            help_text="key -> {value, step, timestamp, min, max, count}",
        )

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, run_id: str) -> Response:
        return Response({"metrics": RunSerializer(_run(request, run_id)).data["metrics"]})

    @extend_schema(request=InputSerializer, responses=BatchResultSerializer)
    def post(self, request: Request, run_id: str) -> Response:
        _check_body_size(request)
        if not isinstance(request.data, dict):
            raise ValidationError("body: a JSON object is required", field="body")
        result = services.run_log_batch(
            run=_run(request, run_id, details=False),
            actor=request.user,
            metrics=metrics_from_json(request.data.get("metrics")),
        )
        return Response(BatchResultSerializer(result).data)


def _log_pairs(request: Request, run_id: str, kind: Literal["params", "tags"]) -> Response:
    """`{kind: {key: value} | [{key, value}]}` logged to the run in one batch."""
    _check_body_size(request)
    body = request.data if isinstance(request.data, dict) else {}
    pairs = pairs_from_json(body.get(kind), field=kind)
    result = services.run_log_batch(
        run=_run(request, run_id, details=False),
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
        services.run_delete_tag(run=_run(request, run_id), actor=request.user, key=key)
        return Response(status=status.HTTP_204_NO_CONTENT)


class HistoryPointSerializer(serializers.Serializer[Any]):
    step = Int64Field()
    value = serializers.JSONField(help_text='a number, or "NaN", "Infinity", "-Infinity"')
    timestamp = Int64Field()


class MetricBucketSerializer(serializers.Serializer[Any]):
    step_first = Int64Field(help_text="the bucket's first step holding a point")
    step_last = Int64Field()
    count = Int64Field(help_text="points, NaN included")
    nan_count = Int64Field()
    min = HistoryPointSerializer(allow_null=True, help_text="null when every point was NaN")
    max = HistoryPointSerializer(allow_null=True)
    last = HistoryPointSerializer(help_text="the latest point (greatest step, then time)")


def _point_json(point: HistoryPoint | None) -> dict[str, Any] | None:
    if point is None:
        return None
    return {"step": point.step, "value": json_float(point.value), "timestamp": point.timestamp}


def _bucket_json(bucket: MetricBucket) -> dict[str, Any]:
    return {
        "step_first": bucket.step_first,
        "step_last": bucket.step_last,
        "count": bucket.count,
        "nan_count": bucket.nan_count,
        "min": _point_json(bucket.min),
        "max": _point_json(bucket.max),
        "last": _point_json(bucket.last),
    }


class MetricHistoryApi(StudioAPIView):
    """One metric's points in step order. With `max_points`, a series longer than that is
    downsampled on the server keeping each bucket's min and max (and, with `buckets=true`,
    each bucket's step range, count, NaN count, min, max and latest point); without, it is
    paged."""

    class FilterSerializer(serializers.Serializer[Any]):
        key = serializers.CharField()
        max_points = Int64Field(required=False, min_value=2)
        buckets = serializers.BooleanField(required=False, default=False)
        step_min = Int64Field(required=False)
        step_max = Int64Field(required=False)
        limit = Int64Field(required=False, min_value=1)
        page_token = serializers.CharField(required=False, allow_blank=True)

    class OutputSerializer(serializers.Serializer[Any]):
        key = serializers.CharField()
        sampled = serializers.BooleanField()
        points = HistoryPointSerializer(many=True)
        buckets = MetricBucketSerializer(
            many=True, required=False, help_text="with max_points, buckets=true and sampled"
        )
        next_page_token = serializers.CharField(allow_null=True)

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer)
    def get(self, request: Request, run_id: str) -> Response | HttpResponse:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        run = _run(request, run_id, details=False)
        if "max_points" in data:
            sampled = selectors.metric_history_sampled(
                run_id=run.pk,
                key=data["key"],
                max_points=data["max_points"],
                step_min=data.get("step_min"),
                step_max=data.get("step_max"),
            )
            body: dict[str, Any] = {
                "key": data["key"],
                "sampled": sampled.sampled,
                "points": [_point_json(p) for p in sampled.points],
                "next_page_token": None,
            }
            if data["buckets"] and sampled.buckets is not None:
                body["buckets"] = [_bucket_json(b) for b in sampled.buckets]
            return Response(body)
        page = selectors.metric_history_rows(
            run_id=run.pk,
            key=data["key"],
            max_results=data.get("limit"),
            page_token=data.get("page_token") or None,
            step_min=data.get("step_min"),
            step_max=data.get("step_max"),
        )
        # Encoded from the rows directly (the same JSON the serializer would write): pages
        # of up to 100,000 points are what full-resolution reads are made of.
        text = (
            f'{{"key":{json.dumps(data["key"])},"sampled":false,'
            f'"points":{points_json(page.items)},'
            f'"next_page_token":{json.dumps(page.next_page_token)}}}'
        )
        return HttpResponse(text, content_type="application/json")


class RunArtifactListApi(StudioAPIView):
    @extend_schema(
        responses=inline_serializer(
            "RunArtifactList", {"files": ArtifactEntrySerializer(many=True)}
        ),
        operation_id="api_v1_runs_artifacts_list",
    )
    def get(self, request: Request, run_id: str) -> Response:
        entries = services.run_artifact_list(
            run=_run(request, run_id), path=request.query_params.get("path", "")
        )
        return Response({"files": ArtifactEntrySerializer(entries, many=True).data})


class RunArtifactApi(StudioAPIView):
    """PUT the raw body as the artifact at `path`; GET it back as a download."""

    parser_classes = [RawBodyParser]

    @extend_schema(request=bytes, responses={201: ArtifactEntrySerializer})
    def put(self, request: Request, run_id: str, path: str) -> Response:
        info = services.run_artifact_put(
            run=_run(request, run_id), actor=request.user, path=path, data=upload_body(request)
        )
        return Response(
            {"path": path, "is_dir": False, "size": info.size}, status=status.HTTP_201_CREATED
        )

    @extend_schema(responses={(200, "*/*"): bytes})  # the type guessed from the path
    def get(self, request: Request, run_id: str, path: str) -> FileResponse:
        stream, info = services.run_artifact_open(run=_run(request, run_id), path=path)
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        response = FileResponse(
            stream, content_type=content_type, as_attachment=True, filename=posixpath.basename(path)
        )
        response["Content-Length"] = str(info.size)
        return response

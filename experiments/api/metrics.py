"""REST for a run's metrics: each metric's summary, logging up to 1,000 points, and one
metric's history (paged at full resolution, or downsampled keeping each bucket's min and
max)."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from experiments import selectors, services
from experiments.api.common import BatchResultSerializer, check_body_size, request_run
from experiments.api.serializers import RunSerializer
from experiments.selectors import HistoryPoint, MetricBucket
from experiments.validation import json_float
from experiments.wire import metrics_from_json, points_json
from studio.api.fields import Int64Field
from studio.api.views import StudioAPIView
from studio.errors import ValidationError


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
        return Response({"metrics": RunSerializer(request_run(request, run_id)).data["metrics"]})

    @extend_schema(request=InputSerializer, responses=BatchResultSerializer)
    def post(self, request: Request, run_id: str) -> Response:
        check_body_size(request)
        if not isinstance(request.data, dict):
            raise ValidationError("body: a JSON object is required", field="body")
        result = services.run_log_batch(
            run=request_run(request, run_id, details=False),
            actor=request.user,
            metrics=metrics_from_json(request.data.get("metrics")),
        )
        return Response(BatchResultSerializer(result).data)


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
        run = request_run(request, run_id, details=False)
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

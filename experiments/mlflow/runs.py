"""MLflow's run routes: create, get, update, delete, restore, search, logging (metric,
parameter, tag, batch) and a metric's history."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse

from experiments import selectors, services
from experiments.mlflow import protocol
from experiments.mlflow.calls import (
    Call,
    Result,
    endpoint,
    lookup_experiment,
    lookup_run,
    max_results_of,
    view_type_of,
)
from experiments.mlflow.protocol import MlflowError
from experiments.models import Run
from experiments.validation import MAX_BATCH_REQUEST_BYTES, parse_int64
from experiments.wire import metrics_from_json, pairs_from_json, points_json
from studio.errors import NotFound


def _run_json(call: Call, run_id: str) -> dict[str, Any]:
    return protocol.run_json(selectors.run_for_user(call.user, run_id, team=call.team))


@endpoint("POST")
def runs_create(call: Call) -> Result:
    experiment = lookup_experiment(call, call.required("experiment_id"), create_default=True)
    tags = dict(pairs_from_json(call.items("tags"), field="tags"))
    name = call.get("run_name") or tags.get(protocol.RUN_NAME_TAG, "")
    if call.get("run_name") and tags.get(protocol.RUN_NAME_TAG, name) != name:
        raise MlflowError(
            "INVALID_PARAMETER_VALUE",
            f"run_name {name!r} and tag {protocol.RUN_NAME_TAG} "
            f"{tags[protocol.RUN_NAME_TAG]!r} differ",
        )
    tags.pop(protocol.RUN_NAME_TAG, None)
    start_time = call.get("start_time")
    run = services.run_create(
        experiment=experiment,
        name=str(name),
        tags=tags,
        start_time=None if start_time is None else parse_int64(start_time, field="start_time"),
        actor=call.user,
    )
    return {"run": _run_json(call, run.run_uuid)}


@endpoint("GET")
def runs_get(call: Call) -> Result:
    return {"run": protocol.run_json(lookup_run(call))}


@endpoint("POST")
def runs_update(call: Call) -> Result:
    run = lookup_run(call, details=False)
    status = call.get("status")
    end_time = call.get("end_time")
    services.run_update(
        run=run,
        actor=call.user,
        name=call.get("run_name"),
        status=None if status is None else str(status),
        end_time=None if end_time is None else parse_int64(end_time, field="end_time"),
    )
    return {"run_info": protocol.run_info_json(selectors.run_for_user(call.user, run.run_uuid))}


@endpoint("POST")
def runs_delete(call: Call) -> Result:
    services.run_delete(run=lookup_run(call, details=False), actor=call.user)
    return {}


@endpoint("POST")
def runs_restore(call: Call) -> Result:
    services.run_restore(run=lookup_run(call, details=False), actor=call.user)
    return {}


@endpoint("POST")
def runs_search(call: Call) -> Result:
    experiment_ids = []
    for value in call.items("experiment_ids"):
        if str(value) == protocol.DEFAULT_EXPERIMENT_ID:
            try:
                experiment_ids.append(lookup_experiment(call, value).pk)
            except NotFound:
                continue
        else:
            experiment_ids.append(value)
    page = selectors.runs_search(
        call.user,
        experiment_ids=experiment_ids,
        team=call.team,
        filter_string=call.get("filter", ""),
        order_by=call.items("order_by"),
        view=view_type_of(call.get("run_view_type")),
        max_results=max_results_of(call, 1000),
        page_token=call.get("page_token"),
    )
    response: dict[str, Any] = {"runs": [protocol.run_json(r) for r in page.items]}
    if page.next_page_token:
        response["next_page_token"] = page.next_page_token
    return response


def _rename_from_tags(call: Call, run: Run, tags: list[tuple[str, str]]) -> None:
    for key, value in tags:
        if key == protocol.RUN_NAME_TAG and value and value != run.name:
            services.run_update(run=run, actor=call.user, name=value)


@endpoint("POST")
def runs_log_metric(call: Call) -> Result:
    run = lookup_run(call, details=False)
    metric = {
        "key": call.get("key"),
        "value": call.required("value"),
        "timestamp": call.get("timestamp"),
        "step": call.get("step"),
    }
    services.run_log_batch(run=run, actor=call.user, metrics=metrics_from_json([metric]))
    return {}


@endpoint("POST")
def runs_log_parameter(call: Call) -> Result:
    run = lookup_run(call, details=False)
    pairs = pairs_from_json([{"key": call.get("key"), "value": call.get("value")}], field="params")
    services.run_log_batch(run=run, actor=call.user, params=pairs)
    return {}


@endpoint("POST")
def runs_set_tag(call: Call) -> Result:
    run = lookup_run(call, details=False)
    pairs = pairs_from_json([{"key": call.get("key"), "value": call.get("value")}], field="tags")
    services.run_log_batch(run=run, actor=call.user, tags=pairs)
    _rename_from_tags(call, run, pairs)
    return {}


@endpoint("POST")
def runs_delete_tag(call: Call) -> Result:
    services.run_delete_tag(
        run=lookup_run(call, details=False), actor=call.user, key=call.string("key")
    )
    return {}


@endpoint("POST")
def runs_log_batch(call: Call) -> Result:
    if call.body_size > MAX_BATCH_REQUEST_BYTES:
        raise MlflowError(
            "INVALID_PARAMETER_VALUE",
            f"Batched logging API requests must be at most {MAX_BATCH_REQUEST_BYTES} bytes, "
            f"got a request of size {call.body_size}.",
        )
    run = lookup_run(call, details=False)
    tags = pairs_from_json(call.items("tags"), field="tags")
    services.run_log_batch(
        run=run,
        actor=call.user,
        metrics=metrics_from_json(call.items("metrics")),
        params=pairs_from_json(call.items("params"), field="params"),
        tags=tags,
    )
    _rename_from_tags(call, run, tags)
    return {}


@endpoint("GET")
def metrics_get_history(call: Call) -> Result:
    run = lookup_run(call, details=False)
    key = call.string("metric_key")
    max_results = call.get("max_results")
    page = selectors.metric_history_rows(
        run_id=run.pk,
        key=key,
        max_results=None if max_results is None else parse_int64(max_results, field="max_results"),
        page_token=call.get("page_token"),
        order=selectors.HistoryOrder.TIME,  # MLflow's server's order, not the charts' step order
    )
    # Encoded from the rows directly: a 25,000-point page is most of this request's work.
    body = '{"metrics":' + points_json(page.items, key=key)
    if page.next_page_token:
        body += ',"next_page_token":' + json.dumps(page.next_page_token)
    return HttpResponse(body + "}", content_type="application/json")

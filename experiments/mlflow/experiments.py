"""MLflow's experiment routes: create, get (by id or name), search, update, delete, restore
and tags."""

from __future__ import annotations

from typing import Any

from experiments import selectors, services
from experiments.mlflow import protocol
from experiments.mlflow.calls import (
    Call,
    Result,
    endpoint,
    lookup_experiment,
    max_results_of,
    view_type_of,
)
from experiments.mlflow.protocol import MlflowError
from experiments.wire import pairs_from_json
from studio.errors import NotFound


@endpoint("POST")
def experiments_create(call: Call) -> Result:
    if call.get("artifact_location"):
        raise MlflowError(
            "INVALID_PARAMETER_VALUE",
            "artifact_location is not supported: run artifacts go to Studiolo's artifact store",
        )
    tags = dict(pairs_from_json(call.items("tags"), field="tags"))
    description = tags.pop(protocol.NOTE_TAG, "")
    experiment = services.experiment_create(
        team=call.team,
        name=call.string("name"),
        description=description,
        tags=tags,
        actor=call.user,
    )
    return {"experiment_id": str(experiment.pk)}


@endpoint("GET")
def experiments_get(call: Call) -> Result:
    experiment = lookup_experiment(call, call.required("experiment_id"))
    return {"experiment": protocol.experiment_json(experiment)}


@endpoint("GET")
def experiments_get_by_name(call: Call) -> Result:
    name = call.string("experiment_name")
    try:
        experiment = selectors.experiment_by_name(call.user, team=call.team, name=name)
    except NotFound:
        raise MlflowError(
            "RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name '{name}'"
        ) from None
    return {"experiment": protocol.experiment_json(experiment)}


@endpoint("GET", "POST")
def experiments_search(call: Call) -> Result:
    page = selectors.experiments_search(
        call.user,
        team=call.team,
        filter_string=call.get("filter", ""),
        order_by=call.items("order_by"),
        view=view_type_of(call.get("view_type")),
        max_results=max_results_of(call, 1000),
        page_token=call.get("page_token"),
    )
    response: dict[str, Any] = {"experiments": [protocol.experiment_json(e) for e in page.items]}
    if page.next_page_token:
        response["next_page_token"] = page.next_page_token
    return response


@endpoint("POST")
def experiments_update(call: Call) -> Result:
    experiment = lookup_experiment(call, call.required("experiment_id"))
    services.experiment_update(experiment=experiment, actor=call.user, name=call.get("new_name"))
    return {}


@endpoint("POST")
def experiments_delete(call: Call) -> Result:
    experiment = lookup_experiment(call, call.required("experiment_id"))
    services.experiment_delete(experiment=experiment, actor=call.user)
    return {}


@endpoint("POST")
def experiments_restore(call: Call) -> Result:
    experiment = lookup_experiment(call, call.required("experiment_id"))
    services.experiment_restore(experiment=experiment, actor=call.user)
    return {}


@endpoint("POST")
def experiments_set_tag(call: Call) -> Result:
    experiment = lookup_experiment(call, call.required("experiment_id"))
    key, value = call.string("key"), str(call.get("value", ""))
    if key == protocol.NOTE_TAG:
        services.experiment_update(experiment=experiment, actor=call.user, description=value)
    else:
        services.experiment_set_tags(experiment=experiment, actor=call.user, tags={key: value})
    return {}


@endpoint("POST")
def experiments_delete_tag(call: Call) -> Result:
    experiment = lookup_experiment(call, call.required("experiment_id"))
    services.experiment_delete_tag(experiment=experiment, actor=call.user, key=call.string("key"))
    return {}

"""A search costs bounded work: a LIKE pattern that made the old regex backtrack for hours
answers at once, long patterns and filters are refused with a 400 naming the filter, a
search past SEARCH_TIMEOUT_SECONDS is stopped with a 503 (the connection serving the next
request), and the web process keeps answering /healthz while a search runs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from experiments.models import Experiment, Run
from experiments.services import run_create, run_log_batch
from tests.experiments.conftest import api, error
from tests.factories import make_token

V1 = "/api/v1"
# MLflow's `params.p LIKE '%a%a%a%a%a%a%a%a%b'` was the regex `^.*a.*a.*a.*a.*a.*a.*a.*a.*b$`:
# against 50 a's, some 10^9 ways to try (14 s here, holding the GIL); 300 characters of it
# would not finish at all.
PATHOLOGICAL = "params.p LIKE '" + "%a" * 8 + "%b'"


def _runs_with_param(experiment: Experiment, actor: User, value: str, count: int) -> None:
    for index in range(count):
        run = run_create(experiment=experiment, name=f"r{index}", actor=actor)
        run_log_batch(run=run, actor=actor, params=[("p", value)])


def _search(user: User, filter_string: str, experiment: Experiment) -> Any:
    return api(user).post(
        f"{V1}/runs/search",
        {"experiment_ids": [experiment.pk], "filter": filter_string},
        format="json",
    )


def _mlflow_search(user: User, filter_string: str, experiment: Experiment) -> Any:
    return Client(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}").post(
        "/api/2.0/mlflow/runs/search",
        json.dumps({"experiment_ids": [str(experiment.pk)], "filter": filter_string}),
        content_type="application/json",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("search", [_search, _mlflow_search])
def test_a_pattern_that_made_the_regex_backtrack_answers_at_once(
    experiment: Experiment, scientist: User, search: Callable[..., Any]
) -> None:
    _runs_with_param(experiment, scientist, "a" * 50, 3)
    started = time.monotonic()
    response = search(scientist, PATHOLOGICAL, experiment)
    assert response.status_code == 200, response.content
    assert response.json()["runs"] == []
    assert time.monotonic() - started < 2


@pytest.mark.django_db
def test_a_300_character_pattern_answers_at_once(experiment: Experiment, scientist: User) -> None:
    _runs_with_param(experiment, scientist, "a" * 300, 3)
    pattern = "%a" * 149 + "%b"
    started = time.monotonic()
    response = _search(scientist, f"params.p ILIKE '{pattern}'", experiment)
    assert response.status_code == 200, response.content
    assert time.monotonic() - started < 2


@pytest.mark.django_db
def test_a_backslash_makes_a_wildcard_literal(experiment: Experiment, scientist: User) -> None:
    for name in ("100%", "1000", "a_b", "axb"):
        run_create(experiment=experiment, name=name, actor=scientist)

    def names(filter_string: str) -> list[str]:
        response = _search(scientist, filter_string, experiment)
        assert response.status_code == 200, response.content
        return sorted(r["name"] for r in response.json()["runs"])

    assert names("attributes.run_name LIKE '100\\%'") == ["100%"]
    assert names("attributes.run_name LIKE '100%'") == ["100%", "1000"]
    assert names("attributes.run_name LIKE 'a\\_b'") == ["a_b"]
    assert names("attributes.run_name ILIKE 'A_B'") == ["a_b", "axb"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("filter_string", "message"),
    [
        ("params.p LIKE '" + "a" * 501 + "'", "the limit is 500"),
        (" AND ".join(["params.p = 'x'"] * 51), "at most 50 clauses"),
        ("params.p IN (" + ", ".join(["'x'"] * 1001) + ")", "at most 1000 strings"),
    ],
)
def test_a_filter_past_the_limits_is_a_400_naming_it(
    experiment: Experiment, scientist: User, filter_string: str, message: str
) -> None:
    body = error(_search(scientist, filter_string, experiment), 400)
    assert body["field"] == "filter"
    assert message in body["message"]


@pytest.mark.django_db
def test_the_pattern_limit_is_a_setting(
    experiment: Experiment, scientist: User, settings: Any
) -> None:
    settings.SEARCH_MAX_PATTERN_LENGTH = 10
    assert _search(scientist, "params.p LIKE '%aaaaaaaa%'", experiment).status_code == 200
    body = error(_search(scientist, "params.p LIKE '%aaaaaaaaa%'", experiment), 400)
    assert "11 characters long; the limit is 10" in body["message"]


@pytest.mark.django_db
def test_too_many_order_clauses_are_a_400(experiment: Experiment, scientist: User) -> None:
    response = api(scientist).post(
        f"{V1}/runs/search",
        {"experiment_ids": [experiment.pk], "order_by": ["metrics.m"] * 11},
        format="json",
    )
    assert error(response, 400)["field"] == "order_by"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "filter_string",
    [
        "metrics.acc > " + "1" * 20_000 + "x",  # took 25 s: every split of the digits
        "params.p = '" + "a" * 50_000,  # an unterminated string
        "params.`" + "a" * 50_000,  # an unterminated quoted key
        " " * 50_000 + "?",
    ],
)
def test_the_filter_is_parsed_in_linear_time(
    experiment: Experiment, scientist: User, filter_string: str
) -> None:
    started = time.monotonic()
    assert error(_search(scientist, filter_string, experiment), 400)["field"] == "filter"
    assert time.monotonic() - started < 1


# A search that really costs time: ILIKE's worst case (each row: every start position tried
# against a 500-character segment) on 6,000-character values, well over a second in all.
COSTLY = "params.p ILIKE '%_" + "a" * 496 + "b%'"


@pytest.mark.django_db(transaction=True)
def test_a_search_past_its_time_limit_is_a_503_and_the_connection_serves_on(
    experiment: Experiment, scientist: User, settings: Any
) -> None:
    _runs_with_param(experiment, scientist, "a" * 6000, 200)
    settings.SEARCH_TIMEOUT_SECONDS = 0.2
    started = time.monotonic()
    body = error(_search(scientist, COSTLY, experiment), 503)
    assert time.monotonic() - started < 3
    assert body["code"] == "unavailable"
    assert "run search took longer than 0.2 s and was stopped" in body["message"]
    mlflow = _mlflow_search(scientist, COSTLY, experiment)
    assert mlflow.status_code == 503, mlflow.content
    assert mlflow.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    # The same connection answers the next search, with no limit left behind.
    settings.SEARCH_TIMEOUT_SECONDS = 10
    response = _search(scientist, "params.p LIKE 'a%'", experiment)
    assert response.status_code == 200, response.content
    assert len(response.json()["runs"]) == 100
    assert not connection.in_atomic_block
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "0"
    assert Run.objects.count() == 200


@pytest.mark.parametrize(
    ("value", "filter_string", "timeout", "status"),
    [
        ("a" * 50, PATHOLOGICAL, 10, 200),  # held the GIL for 14 s before
        ("a" * 6000, COSTLY, 1, 503),  # a search that runs until its limit
    ],
    ids=["pathological", "costly"],
)
def test_healthz_answers_while_a_search_runs(
    asgi_server: str,
    experiment: Experiment,
    scientist: User,
    settings: Any,
    value: str,
    filter_string: str,
    timeout: int,
    status: int,
) -> None:
    _runs_with_param(experiment, scientist, value, 3 if status == 200 else 300)
    settings.SEARCH_TIMEOUT_SECONDS = timeout
    token = make_token(scientist)
    answer: dict[str, Any] = {}

    def search() -> None:
        answer["response"] = httpx.post(
            f"{asgi_server}{V1}/runs/search",
            json={"experiment_ids": [experiment.pk], "filter": filter_string},
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )

    searching = threading.Thread(target=search)
    started = time.monotonic()
    searching.start()
    slowest = 0.0
    probes = 0
    with httpx.Client(base_url=asgi_server, timeout=120) as client:
        while searching.is_alive() or probes < 3:
            sent = time.monotonic()
            assert client.get("/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - sent)
            probes += 1
            time.sleep(0.02)
    searching.join()
    assert slowest < 1.0, f"/healthz took {slowest:.2f} s while the search ran"
    assert answer["response"].status_code == status, answer["response"].content
    assert time.monotonic() - started < timeout + 5

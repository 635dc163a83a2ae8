"""Installs made before the tracking model migrate forward with their runs and metrics."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from experiments import rollups
from tests.factories import make_team

BEFORE = [("experiments", "0001_initial")]


def _latest(executor: MigrationExecutor) -> list[tuple[str, str]]:
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_runs_and_metric_points_of_the_first_schema_are_carried_over() -> None:
    executor = MigrationExecutor(connection)
    latest = _latest(executor)
    try:
        executor.migrate(BEFORE)
        old = executor.loader.project_state(BEFORE).apps
        team = make_team()  # accounts stays at its latest state
        experiment = old.get_model("experiments", "Experiment").objects.create(
            team_id=team.pk, name="legacy"
        )
        started = datetime(2026, 1, 1, 0, 0, 1, 250000, tzinfo=UTC)
        ended = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
        Run = old.get_model("experiments", "Run")
        run = Run.objects.create(experiment=experiment, name="r1", status="FINISHED")
        Run.objects.filter(pk=run.pk).update(started_at=started, ended_at=ended)
        at = datetime(2026, 1, 1, 0, 0, 2, 123000, tzinfo=UTC)
        old.get_model("experiments", "MetricPoint").objects.create(
            run=run, key="loss", value=0.5, step=3, timestamp=at
        )
        old.get_model("experiments", "MetricSummary").objects.create(
            run=run,
            key="loss",
            last_value=0.5,
            last_step=3,
            last_timestamp=at,
            min_value=0.5,
            max_value=0.5,
            count=1,
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)

    new = executor.loader.project_state(latest).apps
    migrated = new.get_model("experiments", "Run").objects.get(pk=run.pk)
    assert len(migrated.run_uuid) == 32
    assert migrated.start_time == int(started.timestamp() * 1000)
    assert migrated.end_time == int(ended.timestamp() * 1000)
    assert (migrated.source, migrated.lifecycle) == ("external", "active")
    point = new.get_model("experiments", "MetricPoint").objects.get(run_id=run.pk)
    assert (point.step, point.value, point.timestamp) == (3, 0.5, int(at.timestamp() * 1000))
    summary = new.get_model("experiments", "MetricSummary").objects.get(run_id=run.pk)
    assert summary.last_timestamp == int(at.timestamp() * 1000)
    # Not known to be in step order (0006): MLflow's history of it is sorted by the database.
    assert summary.in_step_order is False
    # The rollups are filled for the points already there: one cell per level for one point.
    cells = new.get_model("experiments", "MetricRollup").objects.filter(run_id=run.pk)
    assert sorted(cells.values_list("level", "bucket", "count", "min_value")) == [
        (level, 3 >> (2 * level), 1, 0.5) for level in rollups.LEVELS
    ]

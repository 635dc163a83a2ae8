"""Every change to experiments and runs, with permission checks and audit events.

One module per aggregate: `experiments`, `runs` (status transitions), `logging` (params, tags,
metric points), `artifacts`. The names below are what other apps use.
"""

from __future__ import annotations

from experiments.services.artifacts import (
    ArtifactEntry,
    run_artifact_list,
    run_artifact_open,
    run_artifact_put,
    run_artifacts_collect,
)
from experiments.services.experiments import (
    experiment_create,
    experiment_delete,
    experiment_delete_tag,
    experiment_get_or_create,
    experiment_restore,
    experiment_set_tags,
    experiment_update,
)
from experiments.services.logging import (
    BatchResult,
    MetricInput,
    Point,
    metrics_log_batch,
    run_delete_tag,
    run_log_batch,
)
from experiments.services.runs import (
    IllegalRunTransition,
    run_artifact_prefix,
    run_create,
    run_delete,
    run_end,
    run_rename,
    run_restore,
    run_transition,
    run_update,
)

__all__ = [
    "ArtifactEntry",
    "BatchResult",
    "IllegalRunTransition",
    "MetricInput",
    "Point",
    "experiment_create",
    "experiment_delete",
    "experiment_delete_tag",
    "experiment_get_or_create",
    "experiment_restore",
    "experiment_set_tags",
    "experiment_update",
    "metrics_log_batch",
    "run_artifact_list",
    "run_artifact_open",
    "run_artifact_prefix",
    "run_artifact_put",
    "run_artifacts_collect",
    "run_create",
    "run_delete",
    "run_delete_tag",
    "run_end",
    "run_log_batch",
    "run_rename",
    "run_restore",
    "run_transition",
    "run_update",
]

"""Reads of experiments, runs and metric series, always scoped to the reader's teams.

One module per aggregate: `experiments`, `runs` (with the runs table of the UI), `metrics`
(summaries and histories), and `common` (views by lifecycle, page tokens). The names below
are what other apps use.
"""

from __future__ import annotations

from experiments.selectors.common import (
    MAX_SEARCH_RESULTS,
    Page,
    ViewType,
    decode_token,
    encode_token,
    lifecycle_filter,
)
from experiments.selectors.experiments import (
    experiment_by_name,
    experiment_for_user,
    experiments_for_user,
    experiments_search,
    experiments_with_activity,
)
from experiments.selectors.metrics import (
    MAX_DOWNSAMPLED_POINTS,
    MAX_HISTORY_PAGE,
    HistoryOrder,
    HistoryPoint,
    HistoryRow,
    MetricBucket,
    metric_history,
    metric_history_downsampled,
    metric_history_page,
    metric_history_rows,
    metric_history_sampled,
    metric_series,
    metric_summaries,
)
from experiments.selectors.runs import (
    run_for_user,
    run_table_keys,
    runs_by_ids,
    runs_for_user,
    runs_search,
)

__all__ = [
    "MAX_DOWNSAMPLED_POINTS",
    "MAX_HISTORY_PAGE",
    "MAX_SEARCH_RESULTS",
    "HistoryOrder",
    "HistoryPoint",
    "HistoryRow",
    "MetricBucket",
    "Page",
    "ViewType",
    "decode_token",
    "encode_token",
    "experiment_by_name",
    "experiment_for_user",
    "experiments_for_user",
    "experiments_search",
    "experiments_with_activity",
    "lifecycle_filter",
    "metric_history",
    "metric_history_downsampled",
    "metric_history_page",
    "metric_history_rows",
    "metric_history_sampled",
    "metric_series",
    "metric_summaries",
    "run_for_user",
    "run_table_keys",
    "runs_by_ids",
    "runs_for_user",
    "runs_search",
]

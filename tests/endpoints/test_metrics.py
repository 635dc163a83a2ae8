"""Latency histograms: pure functions, no database."""

from __future__ import annotations

import random

import pytest

from endpoints.metrics import (
    LATENCY_BOUNDS_MS,
    OVERFLOW_INDEX,
    bucket_index,
    histogram_add,
    histogram_merge,
    percentile,
)


def test_bounds_are_increasing_and_cover_a_tenth_of_a_millisecond_to_100_seconds() -> None:
    assert LATENCY_BOUNDS_MS[0] == 0.1
    assert LATENCY_BOUNDS_MS[-1] == 100_000
    assert all(a < b for a, b in zip(LATENCY_BOUNDS_MS, LATENCY_BOUNDS_MS[1:], strict=False))
    # Ten buckets per decade: neighbours differ by ~26%.
    assert LATENCY_BOUNDS_MS[10] == 1.0
    assert LATENCY_BOUNDS_MS[20] == 10.0


def test_a_latency_falls_in_the_first_bucket_whose_bound_holds_it() -> None:
    assert bucket_index(0) == 0
    assert bucket_index(0.1) == 0
    assert bucket_index(0.1001) == 1
    assert bucket_index(1.0) == 10
    assert bucket_index(1.1) == 11
    assert bucket_index(100_000) == OVERFLOW_INDEX - 1
    assert bucket_index(10**9) == OVERFLOW_INDEX


def test_add_returns_a_new_histogram_with_string_keys() -> None:
    empty: dict[str, int] = {}
    one = histogram_add(empty, 1.0)
    two = histogram_add(one, 1.0, count=2)

    assert empty == {}
    assert one == {"10": 1}
    assert two == {"10": 3}


def test_merge_adds_counts_and_accepts_int_keys() -> None:
    merged = histogram_merge({"1": 2, "5": 1}, {1: 3, 7: 4}, {}, {"9": 0})

    assert merged == {"1": 5, "5": 1, "7": 4}


def test_percentile_of_an_empty_histogram_is_none() -> None:
    assert percentile({}, 50) is None
    assert percentile({"3": 0}, 50) is None


def test_percentile_refuses_q_outside_0_to_100() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile({"1": 1}, 101)


def test_percentiles_are_within_a_bucket_of_the_truth() -> None:
    rng = random.Random(7)
    latencies = sorted(rng.lognormvariate(1.5, 0.8) for _ in range(5000))
    histogram: dict[str, int] = {}
    for latency in latencies:
        histogram = histogram_add(histogram, latency)

    for q in (50, 90, 99):
        exact = latencies[int(q / 100 * len(latencies)) - 1]
        estimate = percentile(histogram, q)
        assert estimate is not None
        assert abs(estimate - exact) / exact < 0.26, (q, exact, estimate)


def test_percentile_of_merged_histograms_equals_that_of_all_observations() -> None:
    first = histogram_merge({str(bucket_index(x)): 1 for x in (1, 2)})
    second = histogram_merge({str(bucket_index(x)): 1 for x in (3, 40)})
    together = histogram_merge({str(bucket_index(x)): 1 for x in (1, 2, 3, 40)})

    merged = histogram_merge(first, second)

    assert merged == together
    assert percentile(merged, 50) == percentile(together, 50)


def test_slow_outliers_report_the_last_bound() -> None:
    histogram = histogram_add({}, 500_000)

    assert percentile(histogram, 99) == LATENCY_BOUNDS_MS[-1]
    assert percentile(histogram_add(histogram, 1.0), 0) == pytest.approx(0.794, abs=0.001)

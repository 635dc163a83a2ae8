"""Latency histograms of endpoint invocations: pure functions over plain dicts.

A histogram is `{bucket index: count}` (string keys, as JSON stores them; int keys are
accepted on input). Bucket `i` holds latencies in `(LATENCY_BOUNDS_MS[i-1], LATENCY_BOUNDS_MS[i]]`
(bucket 0 starts at 0); the last index, `len(LATENCY_BOUNDS_MS)`, holds everything slower than
the last bound. Ten buckets per decade from 0.1 ms to 100 s: a percentile read back from a
histogram is within ~13% of the true value, and histograms of any number of processes and
time buckets add up exactly (`histogram_merge`), which averages of percentiles never do.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping

Histogram = dict[str, int]

BUCKETS_PER_DECADE = 10
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(
    float(f"{0.1 * 10 ** (i / BUCKETS_PER_DECADE):.4g}") for i in range(6 * BUCKETS_PER_DECADE + 1)
)
OVERFLOW_INDEX = len(LATENCY_BOUNDS_MS)


def bucket_index(latency_ms: float) -> int:
    """The histogram bucket of one latency."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def histogram_add(histogram: Mapping[str, int], latency_ms: float, count: int = 1) -> Histogram:
    """A new histogram: `histogram` with `count` more observations of `latency_ms`."""
    result = _normalized(histogram)
    key = str(bucket_index(latency_ms))
    result[key] = result.get(key, 0) + count
    return result


def histogram_merge(*histograms: Mapping[str, int] | Mapping[int, int]) -> Histogram:
    """The sum of several histograms (of processes, variants or time buckets)."""
    result: Histogram = {}
    for histogram in histograms:
        for key, count in histogram.items():
            if count:
                name = str(int(key))
                result[name] = result.get(name, 0) + count
    return result


def percentile(histogram: Mapping[str, int] | Mapping[int, int], q: float) -> float | None:
    """The q-th percentile (0-100) in milliseconds, or None for an empty histogram.

    Linear interpolation inside the bucket that holds the rank; the overflow bucket answers
    its lower bound (the histogram cannot tell how much slower those requests were).
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile: q must be between 0 and 100, got {q}")
    counts = sorted((int(key), count) for key, count in histogram.items() if count > 0)
    total = sum(count for _, count in counts)
    if total == 0:
        return None
    rank = q / 100 * total
    seen = 0
    for index, count in counts:
        if seen + count >= rank:
            lower = LATENCY_BOUNDS_MS[index - 1] if index > 0 else 0.0
            if index >= OVERFLOW_INDEX:
                return LATENCY_BOUNDS_MS[-1]
            upper = LATENCY_BOUNDS_MS[index]
            fraction = max(rank - seen, 0.0) / count
            return lower + (upper - lower) * fraction
        seen += count
    return LATENCY_BOUNDS_MS[-1]  # pragma: no cover - rank <= total always lands above


def histogram_from_counts(counts: Iterable[tuple[int, int]]) -> Histogram:
    """`{index: count}` pairs (as an in-memory counter keeps them) in the stored form."""
    return histogram_merge(dict(counts))


def _normalized(histogram: Mapping[str, int]) -> Histogram:
    return histogram_merge(histogram)

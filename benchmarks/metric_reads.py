"""Metric reads at scale: 10 metrics x 1,000,000 points in one run, read as a run page does.

In-process (no HTTP server): Django is set up on a throw-away data folder (SQLite), or on the
database given with `--database-url` (PostgreSQL: use a database of its own; it is migrated,
and the benchmark's team, runs and points are deleted at the end unless `--keep-data`).

1. Write: a probe run takes `--probe-batches` calls of `run_log_batch` with 1,000 points of
   one key (the shape of the tracking benchmark's `log_batch`); then the big run takes
   10 x `--points` points, 1,000 per call (100 steps of all 10 keys, as a training loop
   logs them). Only the service calls are timed (the points are generated between calls).
2. Read: each "page" asks, for each of the 10 keys one after another, the downsampled series
   (`max_points` = 2 x buckets, with the buckets' step range, count, min, max and last when
   the selector offers them): the whole range at 1,000 and 2,000 buckets, and zoomed step
   ranges of 10 %, 1 % and 0.1 % of the series at a random (seeded) place per repetition.
   Also the same page through the JSON API (`GET /api/v1/runs/<id>/metric-history`, Django's
   test client in-process: routing, authentication, serialization, no socket), and, as the
   reference, a full scan: one GROUP BY over every point of the range (what the read did
   before the rollups). Every whole-range answer is checked to hold the series' min and max.
3. Delete the run (cascade through its points and rollups), timed.

Reported: write rates, per-call latency, and p50/p95 over `--repeat` pages for each read.

Run: .venv/bin/python benchmarks/metric_reads.py [--points 1000000] [--repeat 20]
     [--database-url postgres://postgres@127.0.0.1:5432/bench]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from common import (
    RESULTS,
    ROOT,
    loadavg,
    machine_facts,
    machine_markdown,
    summary,
    write_results,
)

KEYS = [
    "loss",
    "val_loss",
    "accuracy",
    "val_accuracy",
    "learning_rate",
    "grad_norm",
    "throughput",
    "gpu_memory",
    "perplexity",
    "reward",
]
T0 = 1_767_225_600_000  # 2026-01-01, ms


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "metric_reads.json")
    parser.add_argument(
        "--database-url", default=None, help="DATABASE_URL (default: SQLite in a temp folder)"
    )
    parser.add_argument("--points", type=int, default=1_000_000, help="points per metric")
    parser.add_argument("--metrics", type=int, default=10, help="metric keys (at most 10)")
    parser.add_argument("--probe-batches", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=20, help="pages per read case")
    parser.add_argument("--scan-repeat", type=int, default=3, help="pages of the full scan")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-data", action="store_true", help="do not delete the runs")
    return parser.parse_args()


# --- Django ------------------------------------------------------------------------------------


def setup_django(database_url: str | None) -> Path:
    home = Path(tempfile.mkdtemp(prefix="sb-reads-", dir=tempfile.gettempdir()))
    for name in ("DATABASE_URL", "REDIS_URL", "STUDIOLO_URL", "STUDIOLO_TOKEN"):
        os.environ.pop(name, None)
    os.environ["STUDIOLO_HOME"] = str(home)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "studio.settings"
    sys.path.insert(0, str(ROOT))
    import django
    from django.conf import settings

    django.setup()
    # Live "new points" announcements go nowhere: no page listens, and no Redis is needed.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return home


# --- data --------------------------------------------------------------------------------------


def value_of(key_index: int, step: int, noise: float, points: int) -> float:
    """A plausible curve per key, noisy, with a few one-step spikes and rare NaN."""
    if step % 250_013 == 7 * key_index + 1:
        return math.nan
    if step % 100_003 == 11 * key_index + 5:
        return 1000.0 * (key_index + 1)  # a spike a sampler must not lose
    if step % 170_009 == 13 * key_index + 3:
        return -1000.0 * (key_index + 1)
    progress = step / max(1, points)
    return math.exp(-3 * progress) * (key_index + 1) + 0.05 * noise + 0.01 * math.sin(step / 97)


def interleaved_batches(points: int, keys: list[str], seed: int) -> Iterator[list[Any]]:
    """1,000 points a batch: consecutive steps, every key at each step."""
    from experiments.services import MetricInput

    rng = random.Random(seed)
    steps_per_batch = 1000 // len(keys)
    for first in range(0, points, steps_per_batch):
        batch = []
        for step in range(first, min(points, first + steps_per_batch)):
            timestamp = T0 + step * 10
            for index, key in enumerate(keys):
                value = value_of(index, step, rng.random(), points)
                batch.append(MetricInput(key, value, step, timestamp))
        yield batch


# --- measuring ---------------------------------------------------------------------------------


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def write(run: Any, actor: Any, batches: Iterator[list[Any]], label: str) -> dict[str, Any]:
    from experiments.services import run_log_batch

    calls: list[float] = []
    points = 0
    report_every = 1000
    for number, batch in enumerate(batches, start=1):
        seconds, _ = timed(lambda b=batch: run_log_batch(run=run, actor=actor, metrics=b))
        calls.append(seconds)
        points += len(batch)
        if number % report_every == 0:
            rate = points / sum(calls)
            print(f"  {label}: {points:,} points, {rate:,.0f} points/s", flush=True)
    total = sum(calls)
    return {
        "points": points,
        "calls": len(calls),
        "seconds": round(total, 3),
        "points_per_second": round(points / total),
        "call_seconds": summary(calls),
    }


def downsampled_reader() -> tuple[str, Callable[..., Any]]:
    """The selector a run page calls: with the buckets when this version has them."""
    from experiments import selectors

    sampled = getattr(selectors, "metric_history_sampled", None)
    if sampled is not None:

        def read(**kwargs: Any) -> tuple[list[Any], int, float | None, float | None]:
            result = sampled(**kwargs)
            values = [p.value for p in result.points if p.value is not None]
            return result.points, len(result.buckets or ()), min(values), max(values)

        return "metric_history_sampled (buckets and their min/max points)", read

    def read_points(**kwargs: Any) -> tuple[list[Any], int, float | None, float | None]:
        points, _ = selectors.metric_history_downsampled(**kwargs)
        values = [p.value for p in points if p.value is not None]
        return points, 0, min(values), max(values)

    return "metric_history_downsampled (min/max points)", read_points


def full_scan(run_id: int, key: str, buckets: int, lo: int, hi: int) -> int:
    """The reference: every point of the range aggregated per bucket, in SQL."""
    from django.db import connection

    from experiments.models import MetricPoint

    quote = connection.ops.quote_name
    table = quote(MetricPoint._meta.db_table)
    width = max(1, -(-(hi - lo + 1) // buckets))
    sql = (
        f"SELECT (step - %s) / %s AS b, COUNT(*), MIN(value), MAX(value) FROM {table} "  # noqa: S608 - the model's own table
        f"WHERE run_id = %s AND {quote('key')} = %s AND step BETWEEN %s AND %s GROUP BY 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [lo, width, run_id, key, lo, hi])
        return len(cursor.fetchall())


def read_cases(points: int, repeat: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    cases: list[dict[str, Any]] = [
        {"name": "whole series, 1,000 buckets", "buckets": 1000, "ranges": [None] * repeat},
        {"name": "whole series, 2,000 buckets", "buckets": 2000, "ranges": [None] * repeat},
    ]
    for share, label in ((0.10, "10 %"), (0.01, "1 %"), (0.001, "0.1 %")):
        width = max(1, int(points * share))
        ranges = []
        for _ in range(repeat):
            start = rng.randrange(0, max(1, points - width))
            ranges.append((start, start + width - 1))
        cases.append({"name": f"zoom to {label} of the steps, 1,000 buckets", "buckets": 1000,
                      "ranges": ranges})  # fmt: skip
    return cases


def measure_reads(
    run_id: int, keys: list[str], cases: list[dict[str, Any]], extremes: dict[str, Any]
) -> tuple[str, list[dict[str, Any]]]:
    name, read = downsampled_reader()
    results = []
    for case in cases:
        pages: list[float] = []
        returned = 0
        for window in case["ranges"]:
            kwargs: dict[str, Any] = {"max_points": 2 * case["buckets"]}
            if window is not None:
                kwargs.update(step_min=window[0], step_max=window[1])
            started = time.perf_counter()
            answers = [read(run_id=run_id, key=key, **kwargs) for key in keys]
            pages.append(time.perf_counter() - started)
            returned = sum(len(a[0]) for a in answers)
            if window is None:
                for key, (_, _, low, high) in zip(keys, answers, strict=True):
                    if (low, high) != extremes[key]:
                        raise SystemExit(f"{key}: min/max {low}/{high}, expected {extremes[key]}")
        results.append(
            {
                "case": case["name"],
                "buckets": case["buckets"],
                "points_returned": returned,
                "page_seconds": summary(pages),
            }  # fmt: skip
        )
        print(f"  {case['name']}: p50 {summary(pages)['p50'] * 1000:.1f} ms", flush=True)
    return name, results


def measure_api(run: Any, user: Any, keys: list[str], repeat: int) -> dict[str, Any]:
    from django.test import Client

    client = Client()
    client.force_login(user)
    pages: list[float] = []
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        size = 0
        for key in keys:
            response = client.get(
                f"/api/v1/runs/{run.run_uuid}/metric-history",
                {"key": key, "max_points": 2000, "buckets": "true"},
            )
            if response.status_code != 200:
                raise SystemExit(f"metric-history answered {response.status_code}")
            size += len(response.content)
        pages.append(time.perf_counter() - started)
    return {"case": "whole series, 1,000 buckets, JSON API", "bytes": size,
            "page_seconds": summary(pages)}  # fmt: skip


def measure_scan(run_id: int, keys: list[str], points: int, repeat: int) -> dict[str, Any]:
    pages = []
    for _ in range(repeat):
        started = time.perf_counter()
        for key in keys:
            full_scan(run_id, key, 1000, 0, points - 1)
        pages.append(time.perf_counter() - started)
    return {"case": "whole series, 1,000 buckets, full scan (reference)",
            "page_seconds": summary(pages)}  # fmt: skip


# --- the report --------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:,.1f} ms" if value < 10 else f"{value:,.1f} s"


def markdown(data: dict[str, Any]) -> str:
    lines = ["# Metric reads: 10 metrics x 1,000,000 points in one run", ""]
    for name, result in data["databases"].items():
        lines += [f"## {name}", "", machine_markdown(result["machine"]), ""]
        lines += markdown_one(result), ""
    return "\n".join(lines)


def markdown_one(data: dict[str, Any]) -> str:
    write_ = data["write"]
    lines = [
        f"{data['metrics']} metrics x {data['points']:,} points written through "
        f"`run_log_batch` (1,000 points a call), then read with `{data['reader']}`, one key "
        f"after another as a run page asks; a page is all {data['metrics']} keys. p50/p95 "
        f"over {data['repeat']} pages.",
        "",
        "| write | points | points/s | call p50 | call p95 |",
        "|---|---|---|---|---|",
    ]
    for label, cell in (
        ("probe: 1,000 points of one key per call", write_["probe"]),
        (f"load: 100 steps x {data['metrics']} keys per call", write_["load"]),
    ):
        lines.append(
            f"| {label} | {cell['points']:,} | {cell['points_per_second']:,} | "
            f"{ms(cell['call_seconds']['p50'])} | {ms(cell['call_seconds']['p95'])} |"
        )
    lines += [
        "",
        "| read (a page = all keys) | points returned per page | page p50 | page p95 |",
        "|---|---|---|---|",
    ]
    for row in data["reads"]:
        lines.append(
            f"| {row['case']} | {row.get('points_returned', '-')} | "
            f"{ms(row['page_seconds']['p50'])} | {ms(row['page_seconds']['p95'])} |"
        )
    if data.get("delete_seconds") is not None:
        lines += ["", f"Deleting the runs (cascade): {data['delete_seconds']:.1f} s."]
    return "\n".join(lines)


def merged(out: Path, name: str, result: dict[str, Any]) -> dict[str, Any]:
    """This database's result beside the other database's from an earlier run, if any."""
    data: dict[str, Any] = {"databases": {}}
    if out.exists():
        earlier = json.loads(out.read_text())
        if isinstance(earlier.get("databases"), dict):
            data = earlier
    data["databases"][name] = result
    return data


def main() -> int:
    args = parse_args()
    keys = KEYS[: args.metrics]
    facts = machine_facts()
    home = setup_django(args.database_url)
    from django.db import connection

    from experiments.models import MetricSummary
    from experiments.services import MetricInput, experiment_create, run_create
    from studio.accounts import services as accounts

    stamp = time.strftime("%Y%m%d%H%M%S")
    team = accounts.team_create(slug=f"bench-reads-{stamp}")
    user, _ = accounts.user_create(username=f"bench-reads-{stamp}", password="bench-reads-pw-1")  # noqa: S106 - a throw-away user
    accounts.membership_set(team=team, user=user, role="scientist")
    experiment = experiment_create(team=team, name="metric reads", actor=user)
    name = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    data: dict[str, Any] = {
        "machine": facts,
        "database": name,
        "metrics": len(keys),
        "points": args.points,
        "repeat": args.repeat,
        "write": {},
    }
    runs = []
    try:
        probe = run_create(experiment=experiment, name="probe", actor=user)
        runs.append(probe)
        print(f"probe: {args.probe_batches} calls of 1,000 points (load {loadavg()[0]})")
        probe_batches = (
            [MetricInput("probe", math.sin(i / 50), b * 1000 + i, T0 + b) for i in range(1000)]
            for b in range(args.probe_batches)
        )
        data["write"]["probe"] = write(probe, user, probe_batches, "probe")
        print(f"  {data['write']['probe']['points_per_second']:,} points/s")

        run = run_create(experiment=experiment, name="ten metrics", actor=user)
        runs.append(run)
        print(f"load: {len(keys)} x {args.points:,} points (load {loadavg()[0]})", flush=True)
        batches = interleaved_batches(args.points, keys, args.seed)
        data["write"]["load"] = write(run, user, batches, "load")
        print(f"  {data['write']['load']['points_per_second']:,} points/s")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")  # as autovacuum would soon after such a load

        extremes = {
            s.key: (s.min_value, s.max_value) for s in MetricSummary.objects.filter(run=run)
        }
        print(f"reads (load {loadavg()[0]})", flush=True)
        cases = read_cases(args.points, args.repeat, args.seed)
        data["reader"], data["reads"] = measure_reads(run.pk, keys, cases, extremes)
        data["reads"].append(measure_api(run, user, keys, args.repeat))
        print(f"  JSON API: p50 {data['reads'][-1]['page_seconds']['p50'] * 1000:.1f} ms")
        data["reads"].append(measure_scan(run.pk, keys, args.points, args.scan_repeat))
        print(f"  full scan: p50 {data['reads'][-1]['page_seconds']['p50']:.2f} s", flush=True)
    finally:
        if not args.keep_data:
            seconds, _ = timed(lambda: [r.delete() for r in runs])
            data["delete_seconds"] = round(seconds, 3)
            connection.close()
            shutil.rmtree(home, ignore_errors=True)  # SQLite's file keeps its size after deletes
        else:
            print(f"data folder: {home}")
        data["machine"]["loadavg_at_end"] = loadavg()
    everything = merged(args.out, name, data)
    write_results(args.out, everything, markdown(everything))
    print(markdown_one(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())

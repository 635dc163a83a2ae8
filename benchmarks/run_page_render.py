"""Run page render: 10 metrics x 1,000,000 points, charts drawn in a real browser.

Issue #6's acceptance: "A run page with 10 metrics of 1,000,000 points each renders its
charts in a browser in under 1 s (measured with Playwright)."

1. A throw-away studio (`studiolo up`, common.Studio: SQLite by default, `--database-url`
   for PostgreSQL) with the user `bench` in team `bench`; its password is set with
   `studiolo user set-password --password-stdin`.
2. Load: a child process of this script (Django set up on the studio's STUDIOLO_HOME and
   DATABASE_URL) makes an experiment and a run in team `bench` and writes 10 keys x
   `--points` points through `run_log_batch`, 1,000 points a call (metric_reads.py's data
   and writer), then ends the run (FINISHED, so the page follows no live tail).
3. Browser: Playwright's Chromium (Debian's, headless, 1400x900) logs in with the login
   form, opens the run page once (the first visit: nothing cached), then `--repeat` times in
   a fresh page of the same browser, once per profile (`--profiles`):
   - `regular`: a browser profile on disk (a persistent context in a new folder), as a
     returning user's browser is: the HTTP cache and V8's code cache, which keeps the
     compiled plotly.js between visits;
   - `private`: a private window (a new browser context): cookies and an HTTP cache in
     memory, and no code cache, so plotly.js is compiled again on every visit.
   The target is judged on the regular profile; the private one and the first visits are
   reported beside it.
   Render complete = the chart section's `data-charts-ready="yes"` (experiments.js sets it
   when every chart's series request has answered and `Plotly.react` has drawn it), and
   every chart (`[data-metric-chart]`) has `data-resolution` other than "loading", a
   `.plot-container`, and drawn trace paths (`.scatterlayer .trace path.js-line` with a `d`,
   or a WebGL canvas when Plotly chose scattergl). At that moment `performance.now()` in the
   page is the time since navigation start; the check runs on every animation frame
   (requestAnimationFrame, inside the page, no polling round trips). Also recorded from the
   browser: the series requests' Resource Timing (start, duration, largest end), the
   DOMContentLoaded time, and the points drawn per chart (Plotly's trace data).

Run: .venv/bin/python benchmarks/run_page_render.py [--points 1000000] [--repeat 10]
     [--database-url postgres://postgres@127.0.0.1:5432/rpr] [--home /tmp/rpr-sqlite]

Loading takes minutes (80 s on SQLite, 130 s on PostgreSQL for 10M points); `--home DIR` keeps
the studio's data folder and notes the loaded run in it (`run_page_render.json`), so the next
run with the same `--home`, database, points, metrics and seed measures the same run again
without loading it. Keep the folder's path short (the embedded Redis socket lives in it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from common import (
    ROOT,
    TEAM,
    USER,
    Studio,
    add_studio_arguments,
    loadavg,
    machine_facts,
    machine_markdown,
    ms,
    studiolo_bin,
    summary,
    write_results,
)

PASSWORD = "bench-render-pw-1"  # noqa: S105 - a throw-away user on a throw-away studio
TARGET_SECONDS = 1.0
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 900}

# Resolves with the measurements once every chart has drawn its data (checked each frame).
RENDERED_JS = """
(timeoutMs) => new Promise((resolve) => {
  function chartState(figure) {
    const plot = figure.querySelector("[data-plot]");
    const resolution = figure.getAttribute("data-resolution");
    const container = plot && plot.querySelector(".plot-container");
    const data = (plot && plot.data) || [];
    const points = data.reduce((n, t) => n + ((t.x && t.x.length) || 0), 0);
    const paths = plot ? Array.from(plot.querySelectorAll(".scatterlayer .trace path.js-line"))
      .filter((p) => (p.getAttribute("d") || "").length > 1).length : 0;
    const gl = plot ? plot.querySelectorAll("canvas.gl-canvas").length : 0;
    return {
      key: figure.getAttribute("data-key"),
      resolution: resolution,
      container: !!container,
      traces: data.length,
      points: points,
      paths: paths,
      gl: gl,
      state: (figure.querySelector("[data-chart-state]") || {}).textContent || "",
    };
  }
  function check() {
    const section = document.querySelector("[data-metric-charts]");
    const figures = section ? Array.from(section.querySelectorAll("[data-metric-chart]")) : [];
    const charts = figures.map(chartState);
    const ready = section && section.getAttribute("data-charts-ready") === "yes";
    const drawn = charts.length > 0 && charts.every((c) =>
      c.resolution && c.resolution !== "loading" && c.container && c.points > 0
      && (c.paths > 0 || c.gl > 0));
    const now = performance.now();
    if ((ready && drawn) || now > timeoutMs) {
      const nav = performance.getEntriesByType("navigation")[0];
      const series = performance.getEntriesByType("resource")
        .filter((e) => e.name.includes("/runs/series/"))
        .map((e) => ({
          url: e.name, start: e.startTime, duration: e.duration, end: e.responseEnd,
          ttfb: e.responseStart - e.requestStart, bytes: e.transferSize,
          decoded: e.decodedBodySize,
        }));
      const others = performance.getEntriesByType("resource")
        .filter((e) => !e.name.includes("/runs/series/"))
        .map((e) => ({
          url: e.name, start: e.startTime, duration: e.duration, end: e.responseEnd,
          bytes: e.transferSize, decoded: e.decodedBodySize,
        }));
      const dcl = nav ? nav.domContentLoadedEventEnd - nav.domContentLoadedEventStart : null;
      resolve({
        done: !!(ready && drawn), elapsed: now, charts: charts, series: series,
        resources: others, domContentLoadedStart: nav ? nav.domContentLoadedEventStart : null,
        domContentLoadedHandlers: dcl, domInteractive: nav ? nav.domInteractive : null,
        domContentLoaded: nav ? nav.domContentLoadedEventEnd : null,
        load: nav ? nav.loadEventEnd : null,
        responseEnd: nav ? nav.responseEnd : null,
      });
      return;
    }
    requestAnimationFrame(check);
  }
  check();
})
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_studio_arguments(parser, "run_page_render")
    parser.add_argument("--points", type=int, default=1_000_000, help="points per metric")
    parser.add_argument("--metrics", type=int, default=10, help="metric keys (at most 10)")
    parser.add_argument("--repeat", type=int, default=10, help="measured page loads")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per page load")
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="the studio's data folder, kept; a run loaded there earlier is measured again",
    )
    parser.add_argument(
        "--profiles",
        default="regular,private",
        help="browser profiles to measure, comma-separated: regular (on disk, as a returning "
        "user's browser), private (a private window)",
    )
    parser.add_argument("--load-only", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


# --- loading (a child process with Django on the studio's data) ---------------------------------


def load_run(points: int, metrics: int, seed: int) -> None:
    """In the child: one run in team `bench` with `metrics` keys x `points` points; prints
    a JSON line with the run id and the write rate."""
    sys.path.insert(0, str(ROOT))
    import django
    from django.conf import settings

    django.setup()
    # The "new points" announcements go nowhere (no page is open yet): no Redis needed.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    from django.contrib.auth import get_user_model
    from metric_reads import KEYS, interleaved_batches, write

    from experiments.models import RunStatus
    from experiments.services import experiment_create, run_create, run_end
    from studio.accounts.models import Team

    team = Team.objects.get(slug=TEAM)
    user = get_user_model().objects.get(username=USER)
    experiment = experiment_create(team=team, name="run page render", actor=user)
    run = run_create(experiment=experiment, name="ten metrics", actor=user)
    written = write(run, user, interleaved_batches(points, KEYS[:metrics], seed), "load")
    run_end(run=run, status=RunStatus.FINISHED)
    print(json.dumps({"run": run.run_uuid, "write": written}), flush=True)


def _load_identity(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "database_url": args.database_url,
        "points": args.points,
        "metrics": args.metrics,
        "seed": args.seed,
    }


def loaded_before(studio: Studio, args: argparse.Namespace) -> dict[str, Any] | None:
    """The run an earlier invocation loaded into this `--home` with the same arguments."""
    note = studio.home / "run_page_render.json"
    if args.home is None or not note.exists():
        return None
    recorded = json.loads(note.read_text())
    if recorded["identity"] != _load_identity(args):
        raise SystemExit(
            f"{note} holds a run loaded with {recorded['identity']}, not "
            f"{_load_identity(args)}: pick another --home"
        )
    return {**recorded["loaded"], "reused": True}


def note_loaded(studio: Studio, args: argparse.Namespace, loaded: dict[str, Any]) -> None:
    if args.home is not None:
        note = {"identity": _load_identity(args), "loaded": loaded}
        (studio.home / "run_page_render.json").write_text(json.dumps(note, indent=2) + "\n")


def load_in_child(studio: Studio, args: argparse.Namespace) -> dict[str, Any]:
    env = {**studio.env, "DJANGO_SETTINGS_MODULE": "studio.settings"}
    argv = [sys.executable, __file__, "--load-only", "--points", str(args.points)]
    argv += ["--metrics", str(args.metrics), "--seed", str(args.seed)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stdout is not None
    result: dict[str, Any] | None = None
    for line in process.stdout:
        if line.startswith("{"):
            result = json.loads(line)
        else:
            print(line.rstrip(), flush=True)
    if process.wait() != 0 or result is None:
        raise SystemExit(f"loading failed (exit {process.returncode})")
    return result


# --- the browser ------------------------------------------------------------------------------


def set_password(studio: Studio) -> None:
    done = subprocess.run(
        [studiolo_bin(), "user", "set-password", USER, "--password-stdin"],
        input=PASSWORD + "\n",
        env=studio.env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"studiolo user set-password failed: {done.stderr.strip()}")


PROFILES = ("regular", "private")


def measure_browser(
    url: str, run_id: str, repeat: int, timeout: float, profile: str
) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    loads: list[dict[str, Any]] = []
    first: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rpr-profile-") as folder, sync_playwright() as pw:
        if profile == "regular":
            context = pw.chromium.launch_persistent_context(
                folder,
                executable_path=CHROMIUM,
                headless=True,
                viewport=VIEWPORT,  # type: ignore[arg-type]
            )
            version = context.browser.version if context.browser else "?"
            closing: Any = context
        else:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            version = browser.version
            context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
            closing = browser
        page = context.new_page()
        page.goto(f"{url}/login/")
        page.fill("input[name=username]", USER)
        page.fill("input[name=password]", PASSWORD)
        with page.expect_navigation():
            page.click("form button[type=submit], form input[type=submit]")
        if "/login" in page.url:
            raise SystemExit(f"login failed: still at {page.url}")
        page.close()
        for number in range(repeat + 1):  # the first is the first visit (the warm-up)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
            page.goto(f"{url}/runs/{run_id}/", wait_until="commit")
            result = page.evaluate(RENDERED_JS, timeout * 1000)
            result["errors"] = errors
            page.close()
            label = f"{profile}: " + ("first visit" if number == 0 else f"load {number}")
            series_end = max((s["end"] for s in result["series"]), default=None)
            print(
                f"  {label}: rendered {'yes' if result['done'] else 'NO'} at "
                f"{result['elapsed']:.0f} ms, series done at "
                f"{series_end if series_end is None else round(series_end)} ms, "
                f"points/chart {[c['points'] for c in result['charts']]}",
                flush=True,
            )
            if number:
                loads.append(result)
            else:
                first = result
        closing.close()
    return {"chromium": version, "profile": profile, "first_visit": first, "loads": loads}


# --- the report -------------------------------------------------------------------------------


def analyse(loads: list[dict[str, Any]]) -> dict[str, Any]:
    done = [load for load in loads if load["done"]]
    seconds = [load["elapsed"] / 1000 for load in done]
    series_end = [max(s["end"] for s in load["series"]) / 1000 for load in done if load["series"]]
    series_first_start = [
        min(s["start"] for s in load["series"]) / 1000 for load in done if load["series"]
    ]
    series_each = [s["duration"] / 1000 for load in done for s in load["series"]]
    series_ttfb = [s["ttfb"] / 1000 for load in done for s in load["series"]]
    dcl = [load["domContentLoaded"] / 1000 for load in done if load["domContentLoaded"]]
    charts = loads[-1]["charts"] if loads else []
    stats = summary(seconds)
    return {
        "complete": len(done),
        "incomplete": len(loads) - len(done),
        "render_seconds": stats,
        "dom_content_loaded_seconds": summary(dcl),
        "series_requests_per_load": len(loads[-1]["series"]) if loads else 0,
        "series_keys_per_request": sorted(
            {len(parse_qs(urlsplit(s["url"]).query).get("key", [])) for s in loads[-1]["series"]}
        )
        if loads
        else [],
        "series_first_start_seconds": summary(series_first_start),
        "series_last_end_seconds": summary(series_end),
        "series_request_seconds": summary(series_each),
        "series_ttfb_seconds": summary(series_ttfb),
        "series_bytes_per_request": sorted({s["decoded"] for s in loads[-1]["series"]})
        if loads
        else [],
        "points_per_chart": {c["key"]: c["points"] for c in charts},
        "chart_resolution": {c["key"]: c["resolution"] for c in charts},
        "webgl_charts": sum(1 for c in charts if c["gl"]),
        "page_errors": sorted({e for load in loads for e in load["errors"]}),
        "meets_target": bool(done)
        and len(done) == len(loads)
        and (stats.get("p95") or 1e9) < TARGET_SECONDS,
    }


def _profile_section(name: str, run: dict[str, Any]) -> str:
    a = run["analysis"]
    r = a["render_seconds"]
    rows = [
        ("navigation start → all charts drawn", a["render_seconds"]),
        ("navigation start → DOMContentLoaded", a["dom_content_loaded_seconds"]),
        ("navigation start → first series request sent", a["series_first_start_seconds"]),
        ("navigation start → last series response end", a["series_last_end_seconds"]),
        ("one series request (Resource Timing duration)", a["series_request_seconds"]),
        ("one series request, time to first byte", a["series_ttfb_seconds"]),
    ]
    table = "\n".join(
        f"| {label} | {ms(s.get('p50'))} | {ms(s.get('p95'))} | {ms(s.get('max'))} |"
        for label, s in rows
    )
    first = run.get("first_visit") or {}
    first_text = (
        (f"{first['elapsed']:.0f} ms" if first.get("done") else "not complete") if first else "-"
    )
    verdict = "met" if a["meets_target"] else "NOT met"
    return f"""## {PROFILE_TITLES[name]}

All charts drawn < 1 s → p95 {ms(r.get("p95"))} ({verdict}). Loads complete: {a["complete"]}/{
        a["complete"] + a["incomplete"]
    }. The first visit (nothing cached yet, not counted): {first_text}.

| measure | p50 | p95 | max |
|---|---|---|---|
{table}

Series requests per load: {a["series_requests_per_load"]} (keys per request {
        a.get("series_keys_per_request", "-")
    }), body {a["series_bytes_per_request"]} bytes. Points drawn per chart: {a["points_per_chart"]}
(resolution {sorted(set(a["chart_resolution"].values()))}, WebGL charts {a["webgl_charts"]}).
Page errors: {a["page_errors"] or "none"}.
"""


PROFILE_TITLES = {
    "regular": "Regular browser profile (on disk: HTTP cache and code cache, a returning user)",
    "private": "Private window (memory only, no code cache: plotly.js compiled on every visit)",
}


def judged_profile(profiles: Mapping[str, Any]) -> str:
    """The profile the target is judged on: the regular one, when it was measured."""
    return "regular" if "regular" in profiles else next(iter(profiles))


def markdown(data: dict[str, Any]) -> str:
    runs = data["profiles"]
    judged_name = judged_profile(runs)
    judged = runs[judged_name]
    p95 = judged["analysis"]["render_seconds"].get("p95")
    verdict = "met" if judged["analysis"]["meets_target"] else "NOT met"
    sections = "\n".join(_profile_section(name, run) for name, run in runs.items())
    return f"""# Run page render (run_page_render.py)

{machine_markdown(data["machine"])} CPU probe (`cpu_probe`: 3,000,000 `i * i` in
a Python loop, median of 3): {data["machine"].get("cpu_probe_seconds_at_start")} s at start, {
        data["machine"].get("cpu_probe_seconds_at_end")
    } s at end.

Database: {data["database"]}. Chromium {data["browser"]["chromium"]} (headless, {
        VIEWPORT["width"]
    }x{VIEWPORT["height"]}). One run, {data["metrics"]} metrics x {
        data["points"]:,} points, loaded through
`run_log_batch` in {data["write"]["seconds"]:.0f} s ({
        data["write"]["points_per_second"]:,} points/s){
        " by an earlier run of this script (same data folder, reused)"
        if data.get("reused_load")
        else ""
    }.
Per profile: a first visit, then {data["repeat"]} page loads, each in a fresh page of the
same logged-in browser. Render complete: `data-charts-ready="yes"` and every chart has a
`.plot-container` with drawn traces, checked every animation frame; the time is the page's
`performance.now()`.

**Target: all charts drawn < 1 s, judged on the {judged_name} profile → p95 {ms(p95)} ({verdict}).**

{sections}"""


def cpu_probe() -> float:
    """Median seconds of a fixed single-thread Python loop (three tries): how fast this
    machine is at the moment. On a shared machine the load average says how many others
    want the cores, not how slow that makes them; this says the latter."""
    tries = []
    for _ in range(3):
        started = time.perf_counter()
        sum(i * i for i in range(3_000_000))
        tries.append(time.perf_counter() - started)
    return round(sorted(tries)[1], 3)


def main() -> int:
    args = parse_args()
    if args.load_only:
        load_run(args.points, args.metrics, args.seed)
        return 0
    facts = machine_facts()
    facts["cpu_probe_seconds_at_start"] = cpu_probe()
    with Studio(
        database_url=args.database_url,
        redis_url=args.redis_url,
        keep_home=args.keep_home,
        home=args.home,
    ) as studio:
        print(f"studio at {studio.url} (home {studio.home})", flush=True)
        set_password(studio)
        loaded = loaded_before(studio, args)
        if loaded is None:
            started = time.monotonic()
            loaded = load_in_child(studio, args)
            print(f"loaded run {loaded['run']} in {time.monotonic() - started:.0f} s", flush=True)
            note_loaded(studio, args, loaded)
        else:
            print(f"reusing run {loaded['run']}, loaded earlier in {studio.home}", flush=True)
        profiles = [name.strip() for name in args.profiles.split(",") if name.strip()]
        unknown = sorted(set(profiles) - set(PROFILES))
        if unknown or not profiles:
            raise SystemExit(f"--profiles: {', '.join(PROFILES)}, not {unknown or 'nothing'}")
        browsers = {
            name: measure_browser(studio.url, loaded["run"], args.repeat, args.timeout, name)
            for name in profiles
        }
    facts["loadavg_at_end"] = loadavg()
    facts["cpu_probe_seconds_at_end"] = cpu_probe()
    data: dict[str, Any] = {
        "machine": facts,
        "database": "PostgreSQL" if args.database_url else "SQLite",
        "metrics": args.metrics,
        "points": args.points,
        "repeat": args.repeat,
        "target_seconds": TARGET_SECONDS,
        "write": loaded["write"],
        "reused_load": loaded.get("reused", False),
        "browser": {"chromium": next(iter(browsers.values()))["chromium"]},
        "profiles": {
            name: {
                "analysis": analyse(run["loads"]),
                "first_visit": run["first_visit"],
                "loads": run["loads"],
            }
            for name, run in browsers.items()
        },
    }
    write_results(args.out, data, markdown(data))
    for name, run in data["profiles"].items():
        r = run["analysis"]["render_seconds"]
        print(f"{name}: render p50 {r.get('p50')} s, p95 {r.get('p95')} s, max {r.get('max')} s")
    judged = data["profiles"][judged_profile(data["profiles"])]
    return 0 if judged["analysis"]["meets_target"] else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())

"""A run's page and the compare view in a real browser: the metric charts render from the
series endpoint (a long metric downsampled to the chart's width), a live run's chart grows
when the run logs more points (`run.metrics` on /ws/events, only the new points fetched),
zooming asks for the visible step range and draws it at full resolution, and the compare
view (picked in the runs table) draws the parallel coordinates, the scatter and the curves
of both runs overlaid.

Same set-up as test_browser_models.py: Debian's Chromium through Playwright against uvicorn
serving studio.asgi; data logged through the experiments services.
"""

from __future__ import annotations

import math
import time
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth.models import User

from experiments import events
from experiments.models import Experiment, Run
from experiments.services import MetricInput, experiment_create, run_create, run_log_batch
from studio.accounts.models import Team
from tests.factories import make_team, make_user
from tests.frontend.browser_support import ARTIFACTS, in_server_thread
from tests.frontend.test_browser_models import sign_in

pytestmark = pytest.mark.browser

LONG = 20_000  # points of "loss": far more than a chart has pixels
T0 = 1_700_000_000_000


def loss(step: int) -> float:
    return 99.0 if step == 12_345 else 1.0 / (1 + step / 1000) + 0.01 * math.sin(step)


def log(run: Run, user: User, key: str, steps: range, value: Any) -> None:
    for start in range(steps.start, steps.stop, 1000):
        run_log_batch(
            run=run,
            actor=user,
            metrics=[
                MetricInput(key, value(step), step, T0 + step)
                for step in range(start, min(start + 1000, steps.stop))
            ],
        )


@pytest.fixture
def lab(transactional_db: None) -> tuple[Team, User, Experiment, Run, Run]:
    team = make_team("lab")
    ada = make_user(team, role="scientist", username="ada")
    experiment = experiment_create(team=team, name="vision", actor=ada)
    base = run_create(experiment=experiment, name="base", actor=ada, start_time=T0)
    run_log_batch(run=base, actor=ada, params=[("lr", "0.1"), ("model", "cnn")])
    log(base, ada, "loss", range(LONG), loss)
    log(base, ada, "acc", range(50), lambda step: step / 50)
    other = run_create(experiment=experiment, name="wide", actor=ada, start_time=T0 + 1)
    run_log_batch(run=other, actor=ada, params=[("lr", "0.01"), ("model", "resnet")])
    log(other, ada, "acc", range(50), lambda step: step / 40)
    # The live events of these batches have gone out (the last one ends the runs' throttle
    # windows, up to 2 s later) before a page opens: a page that heard one would ask for
    # the points after its own, and a later batch would share that event's window.
    deadline = time.monotonic() + 10
    while events.announcer.owed() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not events.announcer.owed()
    return team, ada, experiment, base, other


def series_requests(requests: list[str]) -> list[dict[str, list[str]]]:
    return [parse_qs(urlparse(url).query) for url in requests if "/runs/series/" in url]


# When plotly is evaluated: the moment the bundle assigns window.Plotly.
RECORD_PLOTLY_ARRIVAL = """
Object.defineProperty(window, "Plotly", {
  configurable: true,
  get: function () { return undefined; },
  set: function (value) {
    window.__plotlyAt = performance.now();
    Object.defineProperty(window, "Plotly", { value: value, writable: true, configurable: true });
  },
});
"""

# The tick labels of a plot that stick out of its box (by more than a pixel), as text.
LABELS_OUTSIDE = """
(plot) => {
  const box = plot.getBoundingClientRect();
  return Array.from(plot.querySelectorAll(".xtick text, .ytick text")).filter((label) => {
    const r = label.getBoundingClientRect();
    return r.width > 0 && (r.left < box.left - 1 || r.right > box.right + 1
      || r.top < box.top - 1 || r.bottom > box.bottom + 1);
  }).map((label) => label.textContent);
}
"""


def test_run_charts_render_zoom_to_full_resolution_follow_the_run_and_compare(
    asgi_server: str, lab: tuple[Team, User, Experiment, Run, Run], page: Any
) -> None:
    from playwright.sync_api import expect

    _, ada, experiment, base, other = lab
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.add_init_script(RECORD_PLOTLY_ARRIVAL)
    sign_in(page, asgi_server, "ada")

    page.goto(f"{asgi_server}/runs/{base.run_uuid}/")
    expect(page.locator(".nav-link.active", has_text="Experiments")).to_be_visible()
    expect(page.locator("[data-metric-charts]")).to_have_attribute("data-charts-ready", "yes")
    loss_chart = page.locator('[data-metric-chart][data-key="loss"]')
    acc_chart = page.locator('[data-metric-chart][data-key="acc"]')
    expect(loss_chart.locator(".main-svg").first).to_be_visible()
    expect(acc_chart.locator(".main-svg").first).to_be_visible()
    expect(loss_chart).to_have_attribute("data-resolution", "sampled")
    expect(acc_chart).to_have_attribute("data-resolution", "full")
    # One request for both charts, with their width in pixels, sent before plotly (the
    # small bundle, not the full one) was evaluated.
    (first,) = series_requests(requests)
    assert sorted(first["key"]) == ["acc", "loss"]
    width = int(first["width"][0])
    assert 100 <= width <= 1280
    assert any(url.endswith("/vendor/plotly-basic.min.js") for url in requests)
    assert not any(url.endswith("/vendor/plotly.min.js") for url in requests)
    asked_at, plotly_at = page.evaluate(
        "[performance.getEntriesByType('resource').find(e => e.name.includes('/runs/series/'))"
        ".startTime, window.__plotlyAt]"
    )
    assert asked_at < plotly_at
    loss_plot = "document.querySelector('[data-key=\"loss\"] [data-plot]')"
    drawn = page.evaluate(f"{loss_plot}.data[0]")
    assert drawn["type"] == "scatter"  # one downsampled series: SVG (WebGL for many)
    assert len(drawn["x"]) <= 2 * width  # two points per pixel, not 20,000
    assert 99.0 in drawn["y"]  # the one-step spike survives the downsampling
    # Every tick label lies inside its chart's box: the margins, mostly fixed (experiments.js
    # draws each chart once), cut none off.
    for plot in page.locator("[data-metric-chart] [data-plot]").all():
        assert plot.evaluate(LABELS_OUTSIDE) == []
    # A chart's mode bar (zoom, pan, reset) is built when the pointer first comes into it;
    # the chart still follows zooms afterwards (below).
    assert loss_chart.locator(".modebar").count() == 0
    loss_chart.locator("[data-plot]").hover()
    expect(loss_chart.locator(".modebar")).to_be_visible()
    expect(loss_chart.locator('.modebar-btn[data-val="reset"]')).to_be_visible()
    assert acc_chart.locator(".modebar").count() == 0

    # The run logs more: the chart grows without a reload, from the points after its last.
    page.evaluate("window.__studioloSamePage = true")
    requests.clear()
    in_server_thread(lambda: log(base, ada, "loss", range(LONG, LONG + 10), lambda s: 0.5))
    page.wait_for_function(
        f"() => {loss_plot}.data[0].x[{loss_plot}.data[0].x.length - 1] === {LONG + 9}",
        timeout=10_000,
    )
    (tail,) = series_requests(requests)
    assert tail["run"] == [base.run_uuid]
    assert int(tail["step_min"][0]) > LONG - 100  # only what the page did not have

    # Tails add up; past twice its budget (two points per pixel) the series is read again
    # whole, downsampled, so a page left open on a long run stays small (and SVG). Rising
    # values: each downsampled answer keeps its last bucket's highest point, the last step.
    requests.clear()
    end = LONG + 10
    while not any("step_min" not in query for query in series_requests(requests)):
        assert end < LONG + 10 + 4 * 3 * width, "the grown series was never read again"
        chunk = range(end, end + 3 * width)
        end = chunk.stop
        in_server_thread(partial(log, base, ada, "loss", chunk, float))
        page.wait_for_function(
            f"() => {loss_plot}.data[0].x[{loss_plot}.data[0].x.length - 1] === {end - 1}",
            timeout=10_000,
        )
    page.wait_for_function(f"() => {loss_plot}.data[0].x.length <= {2 * width}", timeout=10_000)
    assert page.evaluate(f"{loss_plot}.data[0].type") == "scatter"

    # Zooming asks for the visible steps at the same pixel budget: full resolution there.
    requests.clear()
    page.evaluate(f"Plotly.relayout({loss_plot}, {{'xaxis.range': [12300, 12400]}})")
    expect(loss_chart).to_have_attribute("data-resolution", "full")
    (zoom,) = series_requests(requests)
    assert (zoom["step_min"], zoom["step_max"]) == (["12300"], ["12400"])
    assert zoom["width"] == [str(width)]
    visible = page.evaluate(
        f"{loss_plot}.data[0].x.filter(function (x) {{ return x >= 12300 && x <= 12400; }})"
    )
    assert visible == list(range(12300, 12401))  # every point of the range
    # Smoothing draws a faint raw line and the smoothed one, without asking the server.
    requests.clear()
    page.locator("[data-metric-charts] [data-smoothing]").fill("0.9")
    page.wait_for_function(f"() => {loss_plot}.data.length === 2")
    assert series_requests(requests) == []
    assert page.evaluate("window.__studioloSamePage") is True

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "run-page.png"), full_page=True)
    # On a wall-time axis the dates take two lines: the bottom margin grows to hold them.
    page.locator("[data-metric-charts] [data-x-axis]").select_option("time")
    page.wait_for_function(f"() => {loss_plot}._fullLayout.xaxis.type === 'date'")
    assert page.evaluate(f"{loss_plot}._fullLayout._size.b") > 40
    assert page.locator('[data-key="loss"] [data-plot]').evaluate(LABELS_OUTSIDE) == []

    # Pick both runs in the runs table and compare them.
    page.goto(f"{asgi_server}/experiments/")
    page.click('[data-experiments-table] a:text("vision")')
    page.wait_for_url(f"**/experiments/{experiment.pk}/")
    compare = page.locator("[data-compare-button]")
    expect(compare).to_be_disabled()
    page.screenshot(path=str(ARTIFACTS / "runs-table.png"), full_page=True)
    page.check(f'[data-compare-check][value="{base.run_uuid}"]')
    page.check(f'[data-compare-check][value="{other.run_uuid}"]')
    expect(compare).to_be_enabled()
    compare.click()
    page.wait_for_url("**/runs/compare/**")
    expect(page.locator('[data-compare-table] tr[data-row="params.lr"]')).to_have_attribute(
        "data-differs", ""
    )
    expect(page.locator("[data-parallel] .parcoords").first).to_be_attached()
    expect(page.locator("[data-scatter] .scatterlayer .point")).to_have_count(2)
    expect(page.locator("[data-metric-charts]")).to_have_attribute("data-charts-ready", "yes")
    overlaid = page.evaluate("document.querySelector('[data-key=\"acc\"] [data-plot]').data")
    assert [trace["name"] for trace in overlaid] == ["wide", "base"]  # as in the table
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)
    assert errors == []

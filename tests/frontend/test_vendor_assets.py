"""The plotly.js basic bundle committed under frontend/static/vendor/ is the plotly.js version
the Python `plotly` package ships (the full bundle the compare view loads), and the figures of
the pages that load the basic bundle use only the traces it has."""

from __future__ import annotations

import re
from pathlib import Path

from django.contrib.staticfiles import finders

from frontend.charts import invocations_figure, latency_figure, metric_figure
from frontend.registry_charts import VersionMetrics, versions_metric_figure
from tests.frontend.test_charts import TRAFFIC, UNTIL

# The trace modules of plotly.js-basic-dist-min (its README: "bar, pie and scatter").
BASIC_TRACES = {"bar", "pie", "scatter"}


def header(static_path: str) -> str:
    found = finders.find(static_path)
    assert isinstance(found, str), static_path
    assert found, static_path
    with Path(found).open(encoding="utf-8") as file:
        return file.read(300)


def plotly_js_version(text: str) -> str:
    match = re.search(r"\* plotly\.js (?:\([a-z0-9 -]+\) )?v(\d+\.\d+\.\d+)", text)
    assert match, text
    return match.group(1)


def test_the_basic_bundle_is_the_plotly_js_of_the_python_package() -> None:
    basic = header("vendor/plotly-basic.min.js")
    assert "(basic - minified)" in basic
    assert plotly_js_version(basic) == plotly_js_version(header("vendor/plotly.min.js"))


def test_the_basic_bundle_has_its_licence_and_provenance_beside_it() -> None:
    readme = Path(str(finders.find("vendor/README.md"))).read_text()
    version = plotly_js_version(header("vendor/plotly-basic.min.js"))
    assert f"| {version} |" in readme
    assert finders.find("vendor/plotly-basic.LICENSE")


def test_figures_of_pages_on_the_basic_bundle_use_only_its_traces() -> None:
    figures = [
        metric_figure("loss", [(0, 1.0), (1, 0.5)]),  # a job's page
        invocations_figure(TRAFFIC, until=UNTIL),  # an endpoint's page
        latency_figure(TRAFFIC, until=UNTIL),
        versions_metric_figure(  # a model group's page
            [VersionMetrics(version=1, approval_status="Approved", metrics={"auc": 0.9})], "auc"
        ),
    ]
    types = {trace["type"] for figure in figures for trace in figure["data"]}
    assert types
    assert types <= BASIC_TRACES

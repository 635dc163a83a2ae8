"""The plotly.js basic bundle committed under frontend/static/vendor/ is the plotly.js version
the Python `plotly` package ships (the full bundle the compare view loads), the figures of
the pages that load the basic bundle use only the traces it has, and the stylesheet served in
place of the one plotly.js would inject (the Content-Security-Policy refuses inline styles)
is the one both bundles inject."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders

from frontend.charts import metric_figure
from frontend.endpoints.charts import invocations_figure, latency_figure
from frontend.registry.charts import VersionMetrics, versions_metric_figure
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


PLOTLY_STYLES = (
    Path(__file__).resolve().parents[2] / "frontend/templates/frontend/_plotly_styles.html"
)
# The rules of a stylesheet as the browser reads them, one per line.
CSS_RULES = "(sheet) => Array.from(sheet.cssRules).map((rule) => rule.cssText).join('\\n')"


@pytest.mark.browser
@pytest.mark.parametrize("bundle", ["vendor/plotly-basic.min.js", "vendor/plotly.min.js"])
def test_the_served_plotly_stylesheet_is_the_one_plotly_js_injects(bundle: str, page: Any) -> None:
    page.set_content("<!doctype html><html><head></head><body></body></html>")
    page.add_script_tag(path=str(finders.find(bundle)))
    injected = page.evaluate(
        f"({CSS_RULES})(document.getElementById('plotly.js-style-global').sheet)"
    )
    served = page.evaluate(
        f"""(text) => {{
          const sheet = new CSSStyleSheet();
          sheet.replaceSync(text);
          return ({CSS_RULES})(sheet);
        }}""",
        Path(str(finders.find("vendor/plotly.css"))).read_text(),
    )
    assert injected
    assert served == injected, (
        "frontend/static/vendor/plotly.css is not what this plotly.js injects: replace it with "
        "the rules of document.getElementById('plotly.js-style-global') in a page that loaded it"
    )


def test_the_full_bundle_skips_its_map_styles_for_the_element_the_pages_have() -> None:
    """The full bundle injects MapLibre's styles into a <style> unless an element with their
    id is in the page; _plotly_styles.html puts one there."""
    bundle = Path(str(finders.find("vendor/plotly.min.js"))).read_text(encoding="utf-8")
    ids = set(re.findall(r'document\.getElementById\("([0-9a-f]{64})"\)', bundle))
    assert len(ids) == 1
    assert f'id="{ids.pop()}"' in PLOTLY_STYLES.read_text()

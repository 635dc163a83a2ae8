/* Studiolo experiments pages: the runs table's compare selection, the compare view's figures
 * and "only differences" switch, and the metric charts of the run page and the compare view.
 *
 * Metric charts draw series fetched from the series endpoint (`runs-series`), never series
 * rendered into the page:
 *  - the first series are asked for as soon as this script runs, before plotly: the pages
 *    load this script first and plotly after it (both deferred, so in that order), and the
 *    answers travel while the browser evaluates plotly; a chart is drawn once plotly is there
 *    and its series has come (nothing is drawn before, no empty placeholder charts);
 *  - charts of the same width share requests of up to `config.batch` series (one for a run's
 *    page of up to 10 metrics), passing the width in pixels; the server answers with at
 *    most two points per pixel (each slice's min and max);
 *  - zooming (plotly's relayout) asks for the visible step range at the same budget, which is
 *    full resolution once the range is narrow enough; the coarse series stays drawn outside
 *    the range, so panning never shows a cut line; double-click goes back to the coarse one;
 *  - smoothing (an exponential moving average, debiased as TensorBoard's) and the x-axis
 *    (step, wall time, time since the run started) are applied here, without a request;
 *  - a `run.metrics` event on /ws/events (re-dispatched by studio.js) makes the page ask for
 *    the points after the last step it has of that run, and add charts for new metrics; a
 *    series that has grown past twice its chart's budget is asked for again whole (coarse).
 * Large traces are drawn with WebGL (scattergl) where the page's plotly has it
 * (`config.webgl`: the compare view loads the full bundle; a run's page the basic one, whose
 * single run stays within the budget). Server data is only written with textContent or
 * handed to plotly, never as HTML.
 */
(function () {
  "use strict";

  var shared = window.Studiolo;
  var readConfig = shared.readConfig;
  var element = shared.element;
  var getJson = shared.getJson;

  var PLOT_OPTIONS = {
    displaylogo: false,
    responsive: true,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "toImage"],
  };
  // A metric chart's mode bar (zoom, pan, reset) shows only while the pointer is over the
  // chart, so it is built then: the first time the pointer (or focus) comes into the chart.
  // Building ten of them with the charts was a tenth of a page's drawing time.
  var PLOT_OPTIONS_NO_MODEBAR = Object.assign({}, PLOT_OPTIONS, { displayModeBar: false });
  // Points in a chart above which its traces are drawn with WebGL (when the page's plotly
  // has it). Not lower: a single downsampled series (two points per pixel) draws fast as one
  // SVG path, and a browser keeps only about 16 WebGL contexts alive, one per chart.
  var GL_THRESHOLD = 4000;
  var ZOOM_DEBOUNCE_MS = 120;
  var FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

  // --- the runs table: pick runs to compare ----------------------------------------------

  function setupCompareForm(form) {
    var max = parseInt(form.getAttribute("data-max-compare") || "20", 10);
    var button = form.querySelector("[data-compare-button]");
    var count = form.querySelector("[data-compare-count]");
    function update() {
      var checked = form.querySelectorAll("[data-compare-check]:checked").length;
      button.disabled = checked < 2 || checked > max;
      if (checked === 0) count.textContent = "Select 2–" + max + " runs to compare";
      else if (checked > max) count.textContent = checked + " selected (at most " + max + ")";
      else count.textContent = checked + " selected";
    }
    form.addEventListener("change", update);
    update();
  }

  // --- the compare view ----------------------------------------------------------------------

  function setupFigures(root) {
    if (!window.Plotly) return;
    root.querySelectorAll("[data-figure-plot]").forEach(function (plot) {
      var figure = readConfig(plot.getAttribute("data-figure-id"));
      if (figure) window.Plotly.react(plot, figure.data, figure.layout, PLOT_OPTIONS);
    });
  }

  function setupDifferences(root) {
    var toggle = root.querySelector("[data-only-differences]");
    var table = root.querySelector("[data-compare-table]");
    if (!toggle || !table) return;
    toggle.addEventListener("change", function () {
      table.classList.toggle("only-differences", toggle.checked);
    });
  }

  // --- metric charts -----------------------------------------------------------------------

  // TensorBoard's smoothing: an exponential moving average, debiased so the first points are
  // not pulled towards zero. Gaps (null) stay gaps and do not reset the average.
  function ema(values, weight) {
    var out = new Array(values.length);
    var last = 0;
    var count = 0;
    for (var i = 0; i < values.length; i += 1) {
      var value = values[i];
      if (value === null || !isFinite(value)) {
        out[i] = null;
        continue;
      }
      last = last * weight + (1 - weight) * value;
      count += 1;
      out[i] = last / (1 - Math.pow(weight, count));
    }
    return out;
  }

  function emptySeries() {
    return { step: [], value: [], time: [], sampled: false };
  }

  // The coarse series outside [lo, hi] around the fine one inside.
  function spliced(coarse, fine, lo, hi) {
    var out = emptySeries();
    out.sampled = fine.sampled;
    function push(series, from, to) {
      for (var i = from; i < to; i += 1) {
        out.step.push(series.step[i]);
        out.value.push(series.value[i]);
        out.time.push(series.time[i]);
      }
    }
    var before = 0;
    while (before < coarse.step.length && coarse.step[before] < lo) before += 1;
    var after = before;
    while (after < coarse.step.length && coarse.step[after] <= hi) after += 1;
    push(coarse, 0, before);
    push(fine, 0, fine.step.length);
    push(coarse, after, coarse.step.length);
    return out;
  }

  function parseAxisValue(value) {
    if (typeof value === "number") return value;
    // plotly writes date ranges as "YYYY-MM-DD HH:MM:SS.sss", in UTC here (no time zone set).
    var text = String(value).replace(" ", "T");
    if (text.length === 10) text += "T00:00:00";
    var parsed = Date.parse(text + "Z");
    return isNaN(parsed) ? null : parsed;
  }

  function plotWidth(plot, config) {
    var width = Math.round(plot.clientWidth || 600);
    return Math.max(16, Math.min(config.max_width, width));
  }

  function seriesUrl(config, runIds, keys, width, range) {
    var query = new URLSearchParams();
    runIds.forEach(function (id) { query.append("run", id); });
    keys.forEach(function (key) { query.append("key", key); });
    query.set("width", String(width));
    if (range && range.stepMin !== null) query.set("step_min", String(range.stepMin));
    if (range && range.stepMax !== null) query.set("step_max", String(range.stepMax));
    return config.series + "?" + query.toString();
  }

  // The first series of the page's charts, asked for before plotly is evaluated: one request
  // per `config.batch` series of charts of the same width (the server reads them one after
  // another either way; one request saves the others' round trips and per-request work).
  // Returns key -> a promise of that key's answer items (one per run).
  function requestFirstSeries(section, config) {
    var ids = config.runs.map(function (run) { return run.id; });
    var keysPerRequest = Math.max(1, Math.floor(config.batch / Math.max(1, ids.length)));
    var keysByWidth = {};
    section.querySelectorAll("[data-metric-chart]").forEach(function (figure) {
      var width = plotWidth(figure.querySelector("[data-plot]"), config);
      (keysByWidth[width] = keysByWidth[width] || []).push(figure.getAttribute("data-key"));
    });
    var answers = {};
    Object.keys(keysByWidth).forEach(function (width) {
      var keys = keysByWidth[width];
      for (var start = 0; start < keys.length; start += keysPerRequest) {
        var group = keys.slice(start, start + keysPerRequest);
        var request = getJson(seriesUrl(config, ids, group, Number(width)));
        group.forEach(function (key) {
          answers[key] = request.then(function (answer) {
            return answer.series.filter(function (item) { return item.key === key; });
          });
        });
      }
    });
    return answers;
  }

  function setupMetricCharts(section, config, firstSeries) {
    if (!window.Plotly) return;
    var grid = section.querySelector("[data-chart-grid]");
    var empty = section.querySelector("[data-charts-empty]");
    var smoothingInput = section.querySelector("[data-smoothing]");
    var smoothingValue = section.querySelector("[data-smoothing-value]");
    var axisSelect = section.querySelector("[data-x-axis]");
    var runsById = {};
    config.runs.forEach(function (run) { runsById[run.id] = run; });
    var view = { smoothing: 0, xmode: "step" };
    var charts = {};

    function widthOf(chart) {
      return plotWidth(chart.plot, config);
    }

    // Non-finite values come as "NaN", "Infinity", "-Infinity": plotly draws them as gaps.
    function toSeries(item) {
      var values = item.value.map(function (value) { return typeof value === "number" ? value : null; });
      return { step: item.step, value: values, time: item.time, sampled: item.sampled };
    }

    function xOf(series, run) {
      if (view.xmode === "time") return series.time;
      if (view.xmode === "relative") {
        return series.time.map(function (time) { return (time - run.start_time) / 1000; });
      }
      return series.step;
    }

    function traces(chart) {
      var data = [];
      var total = 0;
      config.runs.forEach(function (run) {
        var series = chart.shown[run.id];
        total += series ? series.step.length : 0;
      });
      var type = config.webgl && total > GL_THRESHOLD ? "scattergl" : "scatter";
      config.runs.forEach(function (run) {
        var series = chart.shown[run.id];
        if (!series || !series.step.length) return;
        var x = xOf(series, run);
        var base = {
          type: type,
          x: x,
          name: run.name,
          connectgaps: false,
          hovertemplate: "%{fullData.name}: %{y:.6g}<extra></extra>",
        };
        if (view.smoothing > 0) {
          data.push(Object.assign({}, base, {
            mode: "lines",
            y: series.value,
            opacity: 0.25,
            line: { color: run.colour, width: 1 },
            hoverinfo: "skip",
            hovertemplate: null,
            showlegend: false,
          }));
          data.push(Object.assign({}, base, {
            mode: "lines",
            y: ema(series.value, view.smoothing),
            line: { color: run.colour, width: 2 },
          }));
        } else {
          data.push(Object.assign({}, base, {
            mode: series.step.length <= 50 ? "lines+markers" : "lines",
            y: series.value,
            line: { color: run.colour, width: 2 },
            marker: { color: run.colour, size: 4 },
          }));
        }
      });
      return data;
    }

    // Drawn once: plotly draws a chart a second time whenever its automatic margins differ
    // from the ones it started with, which an x tick label at the plot's right edge always
    // did (half the cost of a page of charts). The margins fit the usual labels, and grow
    // only for what varies: the x labels' height (dates take two lines) and the y labels'
    // width. Tick labels are not measured one by one for overflow ("allow"): the margins
    // hold them.
    function layout(chart, data) {
      var axis = { gridcolor: "#eef0f3", zeroline: false, linecolor: "#cfd4dc", ticklabeloverflow: "allow" };
      var titles = { step: "step", time: "wall time (UTC)", relative: "time since the run started (s)" };
      return {
        height: 260,
        margin: { l: 52, r: 16, t: 10, b: 40 },
        paper_bgcolor: "rgba(0,0,0,0)",
        plot_bgcolor: "rgba(0,0,0,0)",
        font: { family: FONT, size: 11, color: "#5b6474" },
        showlegend: config.runs.length > 1,
        legend: { orientation: "h", y: -0.3 },
        hovermode: "x",
        // The user's zoom survives redraws (new data, smoothing) until the x-axis changes.
        uirevision: view.xmode,
        xaxis: Object.assign({}, axis, {
          automargin: "height",
          title: { text: titles[view.xmode] },
          type: view.xmode === "time" ? "date" : "linear",
        }),
        yaxis: Object.assign({}, axis, { automargin: "width" }),
        annotations: data.length ? [] : [{
          text: "No values",
          showarrow: false,
          xref: "paper",
          yref: "paper",
          x: 0.5,
          y: 0.5,
          font: { size: 13, color: "#8a93a3" },
        }],
      };
    }

    function setState(chart) {
      var sampled = config.runs.some(function (run) {
        return chart.shown[run.id] && chart.shown[run.id].sampled;
      });
      var resolution = !chart.loaded ? "loading" : sampled ? "sampled" : "full";
      chart.figure.setAttribute("data-resolution", resolution);
      chart.state.textContent = resolution === "loading" ? "loading…"
        : resolution === "sampled" ? "downsampled (min/max per pixel)" : "full resolution";
    }

    // A chart is drawn once its series has come: before, it is its caption's "loading…".
    function draw(chart) {
      if (!chart.loaded) return;
      var data = traces(chart);
      var options = chart.modebar ? PLOT_OPTIONS : PLOT_OPTIONS_NO_MODEBAR;
      window.Plotly.react(chart.plot, data, layout(chart, data), options);
      if (!chart.listening) { // plotly adds `on` to the plot when it first draws it
        chart.listening = true;
        chart.plot.on("plotly_relayout", function (event) { onRelayout(chart, event); });
      }
      setState(chart);
    }

    function withModebar(chart) {
      if (chart.modebar) return;
      chart.modebar = true;
      draw(chart); // the user's zoom stays (uirevision)
    }

    // --- zoom -------------------------------------------------------------------------------

    // The step range of `run` between two x values of the current axis. On a time axis the
    // range is found in the points the page has (steps and times go together); the
    // neighbouring points are included, so the edges are covered.
    function stepRange(run, x0, x1, coarse) {
      if (view.xmode === "step") {
        return { stepMin: Math.floor(x0), stepMax: Math.ceil(x1) };
      }
      var t0 = view.xmode === "time" ? parseAxisValue(x0) : run.start_time + x0 * 1000;
      var t1 = view.xmode === "time" ? parseAxisValue(x1) : run.start_time + x1 * 1000;
      if (t0 === null || t1 === null || !coarse || !coarse.step.length) return null;
      var stepMin = coarse.step[0];
      var stepMax = coarse.step[coarse.step.length - 1];
      for (var i = 0; i < coarse.time.length; i += 1) {
        if (coarse.time[i] <= t0) stepMin = coarse.step[i];
        if (coarse.time[i] >= t1) {
          stepMax = coarse.step[i];
          break;
        }
      }
      return { stepMin: Math.min(stepMin, stepMax), stepMax: Math.max(stepMin, stepMax) };
    }

    function zoom(chart, x0, x1) {
      chart.seq += 1;
      var seq = chart.seq;
      var width = widthOf(chart);
      var requests = [];
      if (view.xmode === "step") {
        var range = stepRange(null, x0, x1);
        requests.push({ runs: config.runs, range: range });
      } else {
        config.runs.forEach(function (run) {
          var range = stepRange(run, x0, x1, chart.full[run.id]);
          if (range) requests.push({ runs: [run], range: range });
        });
      }
      chart.state.textContent = "loading the visible range…";
      Promise.all(requests.map(function (request) {
        var ids = request.runs.map(function (run) { return run.id; });
        var url = seriesUrl(config, ids, [chart.key], width, request.range);
        return getJson(url).then(function (answer) {
          return { range: request.range, answer: answer };
        });
      })).then(function (results) {
        if (seq !== chart.seq) return; // a newer zoom (or a zoom-out) came meanwhile
        results.forEach(function (result) {
          result.answer.series.forEach(function (item) {
            chart.shown[item.run] = spliced(
              chart.full[item.run] || emptySeries(), toSeries(item),
              result.range.stepMin, result.range.stepMax
            );
          });
        });
        chart.zoomed = { x0: x0, x1: x1 };
        draw(chart);
      }).catch(function () {
        if (seq === chart.seq) chart.state.textContent = "could not load the visible range";
      });
    }

    function unzoom(chart) {
      chart.seq += 1;
      chart.zoomed = null;
      chart.shown = Object.assign({}, chart.full);
      draw(chart);
    }

    function onRelayout(chart, event) {
      if (!chart.loaded) return;
      if (event["xaxis.autorange"]) {
        window.clearTimeout(chart.timer);
        unzoom(chart);
        return;
      }
      var x0 = event["xaxis.range[0]"];
      var x1 = event["xaxis.range[1]"];
      if (x0 === undefined && Array.isArray(event["xaxis.range"])) {
        x0 = event["xaxis.range"][0];
        x1 = event["xaxis.range"][1];
      }
      if (x0 === undefined || x1 === undefined) return; // y only, or a resize
      window.clearTimeout(chart.timer);
      chart.timer = window.setTimeout(function () { zoom(chart, x0, x1); }, ZOOM_DEBOUNCE_MS);
    }

    // --- loading ------------------------------------------------------------------------------

    function addChart(key, figure) {
      if (!figure) {
        figure = element("figure", "chart metric-chart");
        figure.setAttribute("data-metric-chart", "");
        figure.setAttribute("data-key", key);
        var caption = element("figcaption");
        caption.appendChild(element("code", null, key));
        caption.appendChild(document.createTextNode(" "));
        var stateNode = element("span", "chart-state");
        stateNode.setAttribute("data-chart-state", "");
        caption.appendChild(stateNode);
        figure.appendChild(caption);
        var plotNode = element("div", "chart-plot");
        plotNode.setAttribute("data-plot", "");
        figure.appendChild(plotNode);
        grid.appendChild(figure);
        if (empty) empty.hidden = true;
      }
      var chart = {
        key: key,
        figure: figure,
        plot: figure.querySelector("[data-plot]"),
        state: figure.querySelector("[data-chart-state]"),
        full: {},
        shown: {},
        zoomed: null,
        loaded: false,
        listening: false,
        modebar: false,
        seq: 0,
        timer: null,
      };
      charts[key] = chart;
      chart.plot.addEventListener("pointerenter", function () { withModebar(chart); });
      chart.plot.addEventListener("focusin", function () { withModebar(chart); });
      setState(chart);
      return chart;
    }

    // The chart's series (coarse, whole) has come: drawn; a zoomed chart keeps its range.
    function receive(chart, items) {
      items.forEach(function (item) { chart.full[item.run] = toSeries(item); });
      if (!chart.zoomed) chart.shown = Object.assign({}, chart.full);
      chart.loaded = true;
      draw(chart);
    }

    function notLoaded(chart) {
      // A chart already drawn keeps what it has (a failed re-read of a grown series).
      if (!chart.loaded) chart.state.textContent = "could not load this metric";
    }

    function load(chart) {
      var ids = config.runs.map(function (run) { return run.id; });
      return getJson(seriesUrl(config, ids, [chart.key], widthOf(chart))).then(function (answer) {
        receive(chart, answer.series);
      }).catch(function () { notLoaded(chart); });
    }

    // The charts in the page draw the series asked for before plotly came (firstSeries).
    var ready = Promise.all(Array.prototype.map.call(
      section.querySelectorAll("[data-metric-chart]"),
      function (figure) {
        var chart = addChart(figure.getAttribute("data-key"), figure);
        if (!firstSeries[chart.key]) return load(chart);
        return firstSeries[chart.key].then(function (items) { receive(chart, items); })
          .catch(function () { notLoaded(chart); });
      }
    ));
    section.setAttribute("data-charts-ready", "loading");
    ready.then(function () { section.setAttribute("data-charts-ready", "yes"); });

    // --- controls -----------------------------------------------------------------------------

    var frame = null;
    function redrawAll() {
      frame = null;
      Object.keys(charts).forEach(function (key) { draw(charts[key]); });
    }
    smoothingInput.addEventListener("input", function () {
      view.smoothing = Math.min(0.999, Math.max(0, parseFloat(smoothingInput.value) || 0));
      smoothingValue.textContent = view.smoothing.toFixed(2);
      if (frame === null) frame = window.requestAnimationFrame(redrawAll);
    });
    axisSelect.addEventListener("change", function () {
      view.xmode = axisSelect.value;
      Object.keys(charts).forEach(function (key) {
        var chart = charts[key];
        chart.seq += 1;
        chart.zoomed = null;
        chart.shown = Object.assign({}, chart.full);
      });
      redrawAll();
    });

    // --- live runs ----------------------------------------------------------------------------

    var live = {}; // run id -> {busy, pending: {key: true}}

    function lastStep(chart, runId) {
      var series = chart.full[runId];
      return series && series.step.length ? series.step[series.step.length - 1] : null;
    }

    function appendTail(chart, runId, tail) {
      var series = chart.full[runId] || (chart.full[runId] = emptySeries());
      var after = lastStep(chart, runId);
      for (var i = 0; i < tail.step.length; i += 1) {
        if (after !== null && tail.step[i] <= after) continue; // already drawn
        series.step.push(tail.step[i]);
        series.value.push(tail.value[i]);
        series.time.push(tail.time[i]);
      }
      series.sampled = series.sampled || tail.sampled;
      if (!chart.zoomed) chart.shown[runId] = series;
      // The run page's table of latest values follows too (the value at the last step).
      var row = document.querySelector('[data-metric="' + CSS.escape(chart.key) + '"]');
      var at = tail.step.length - 1;
      if (row && config.runs.length === 1 && at >= 0 && tail.step[at] === series.step[series.step.length - 1]) {
        var value = tail.raw[at];
        row.querySelector("[data-latest]").textContent =
          typeof value === "number" ? String(Number(value.toPrecision(6))) : String(value);
        row.querySelector("[data-last-step]").textContent = String(tail.step[at]);
      }
    }

    function followRun(runId, keys) {
      var state = live[runId] || (live[runId] = { busy: false, pending: {} });
      keys.forEach(function (key) { state.pending[key] = true; });
      if (state.busy) return; // asked again when the answer in flight has been drawn
      state.busy = true;
      ready.then(function () { return fetchTail(runId, state); }).then(function () {
        state.busy = false;
        if (Object.keys(state.pending).length) followRun(runId, []);
      }, function () {
        state.busy = false;
      });
    }

    function fetchTail(runId, state) {
      var keys = Object.keys(state.pending);
      state.pending = {};
      var known = keys.filter(function (key) { return charts[key] && charts[key].loaded; });
      var fresh = keys.filter(function (key) { return !charts[key]; });
      var work = fresh.map(function (key) { return load(addChart(key)); });
      if (known.length) {
        // Only points after the last step the page has; a key behind the others gets its
        // missing points, the others' repeats are dropped by appendTail.
        var steps = known.map(function (key) { return lastStep(charts[key], runId); });
        var from = steps.indexOf(null) === -1 ? Math.min.apply(null, steps) + 1 : null;
        var width = Math.max.apply(null, known.map(function (key) { return widthOf(charts[key]); }));
        var url = seriesUrl(config, [runId], known, width, { stepMin: from, stepMax: null });
        work.push(getJson(url).then(function (answer) {
          var outgrown = [];
          answer.series.forEach(function (item) {
            var chart = charts[item.key];
            if (!chart) return;
            appendTail(chart, item.run, Object.assign(toSeries(item), { raw: item.value }));
            // Tails add up: past twice its budget the series is asked for again, coarse.
            if (chart.full[item.run].step.length > 4 * widthOf(chart)) outgrown.push(chart);
            else draw(chart);
          });
          return Promise.all(outgrown.map(load));
        }));
      }
      return Promise.all(work);
    }

    document.addEventListener("studiolo:event", function (event) {
      var message = event.detail;
      if (!message || message.event !== "run.metrics" || !message.data) return;
      if (!runsById[message.data.run_id]) return;
      followRun(message.data.run_id, message.data.keys || []);
    });

    // Status changes of the page's runs reach it as audit events: re-read the run.
    var badge = document.querySelector(".page-header [data-status-badge]");
    if (badge && config.runs.length === 1) {
      document.addEventListener("studiolo:event", function (event) {
        var message = event.detail;
        var data = message && message.data;
        if (!data || message.event !== "audit" || data.action !== "run.status_changed") return;
        var run = runsById[data.object_id];
        if (!run) return;
        getJson(run.api).then(function (fresh) {
          if (badge.getAttribute("data-status") === fresh.status) return;
          badge.className = "status status-" + (config.colours[fresh.status] || "gray") + " changed";
          badge.setAttribute("data-status", fresh.status);
          badge.textContent = config.labels[fresh.status] || fresh.status;
          var ended = document.querySelector("[data-run-ended]");
          if (ended && fresh.end_time) {
            ended.textContent = new Date(fresh.end_time).toISOString().slice(0, 16).replace("T", " ");
          }
        }).catch(function () {});
      });
    }
  }

  // Now, while the document's later deferred scripts (plotly) are still to be evaluated.
  var chartsSection = document.querySelector("[data-metric-charts]");
  var chartsConfig = readConfig("metric-charts-config");
  var firstSeries = chartsSection && chartsConfig ? requestFirstSeries(chartsSection, chartsConfig) : null;

  document.addEventListener("DOMContentLoaded", function () {
    var compareForm = document.querySelector("[data-compare-form]");
    if (compareForm) setupCompareForm(compareForm);
    var comparePage = document.querySelector("[data-compare-page]");
    if (comparePage) {
      setupFigures(comparePage);
      setupDifferences(comparePage);
    }
    if (firstSeries) setupMetricCharts(chartsSection, chartsConfig, firstSeries);
  });
})();

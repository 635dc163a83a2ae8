/* Endpoint pages: the live list, the live endpoint page (status, attention, variants,
 * instances and their history, events), its traffic charts, and the "try it" console.
 *
 * Both pages follow `endpoint.*` team events heard on /ws/events by studio.js. On an event
 * they re-read the endpoint(s) from the REST API with the session and redraw from that answer:
 * one source of truth, whatever order events arrive in. While an endpoint is busy (Creating,
 * Updating, Deleting) its page also re-reads every few seconds: an instance's moves publish
 * `endpoint.instance`, but not every detail does (its address, once its container runs).
 * `endpoint.traffic` (the data plane wrote new statistics, every few seconds while requests
 * come in) makes the page re-read its traffic figures and redraw the charts in place
 * (Plotly.react).
 *
 * The console calls the data plane exactly as any client does, with a bearer token: a
 * short-lived one the page asks the studio for (POST, CSRF-protected) on the first Send.
 * Data from the server is only ever written with textContent, never innerHTML.
 */
(function () {
  "use strict";

  var shared = window.Studiolo;
  var readConfig = shared.readConfig;
  var element = shared.element;
  var formatTime = shared.formatTime;

  var EVENTS = ["endpoint.status", "endpoint.instance", "endpoint.attention", "endpoint.deleted"];
  var TRAFFIC_EVENT = "endpoint.traffic";
  var PLOT_OPTIONS = { displayModeBar: false, responsive: true };
  var BUSY_POLL_MS = 3000;
  var DEBOUNCE_MS = 250;

  // Meant to serve, yet no healthy instance: every invocation gets 503 meanwhile.
  function unserved(endpoint) {
    return (endpoint.status === "InService" || endpoint.status === "Updating") && endpoint.healthy_count === 0;
  }

  function getJson(url) {
    return shared.getJson(url, true); // a deleted endpoint reads as null
  }

  function badge(colours, labels, status) {
    var node = element("span", "status status-" + (colours[status] || "gray"), labels[status] || status);
    node.setAttribute("data-status-badge", "");
    node.setAttribute("data-status", status);
    return node;
  }

  function setBadge(old, colours, labels, status) {
    if (!old || old.getAttribute("data-status") === status) return;
    var fresh = badge(colours, labels, status);
    fresh.classList.add("changed");
    old.replaceWith(fresh);
  }

  function setText(root, selector, text) {
    root.querySelectorAll(selector).forEach(function (node) {
      if (node.textContent !== String(text)) node.textContent = String(text);
    });
  }

  function packageLink(ref) {
    var parts = String(ref).split("/");
    var version = parts.pop();
    return "/models/" + encodeURIComponent(parts.join("/")) + "/" + encodeURIComponent(version) + "/";
  }

  // Runs `task` once after a quiet moment, however many events arrive meanwhile; never two at once.
  function debounced(task) {
    var timer = null;
    var running = false;
    var again = false;
    function run() {
      timer = null;
      if (running) {
        again = true;
        return;
      }
      running = true;
      Promise.resolve(task()).catch(function () {}).then(function () {
        running = false;
        if (again) {
          again = false;
          schedule();
        }
      });
    }
    function schedule() {
      if (timer === null) timer = window.setTimeout(run, DEBOUNCE_MS);
    }
    return schedule;
  }

  // --- the list ------------------------------------------------------------------------

  function setupList(table, config) {
    var team = config.team;
    var hint = document.querySelector("[data-new-endpoints]");
    var hintText = document.querySelector("[data-new-endpoints-text]");
    var announced = {};

    function rowByName(name) {
      var rows = table.querySelectorAll("tr[data-endpoint]");
      for (var i = 0; i < rows.length; i += 1) {
        if (rows[i].getAttribute("data-endpoint") === name) return rows[i];
      }
      return null;
    }

    function render(page) {
      if (!page) return;
      page.results.forEach(function (endpoint) {
        var row = rowByName(endpoint.name);
        if (!row) {
          if (!announced[endpoint.name]) {
            announced[endpoint.name] = true;
            var count = Object.keys(announced).length;
            hintText.textContent = count === 1 ? "1 new endpoint." : count + " new endpoints.";
            hint.hidden = false;
          }
          return;
        }
        setBadge(row.querySelector("[data-status-badge]"), config.colours, config.labels, endpoint.status);
        setText(row, "[data-healthy]", endpoint.healthy_count);
        setText(row, "[data-total]", endpoint.instance_count);
        setText(row, "[data-config]", endpoint.config);
        var pending = row.querySelector("[data-pending-config]");
        pending.hidden = !endpoint.pending_config;
        pending.textContent = endpoint.pending_config ? "→ " + endpoint.pending_config : "";
        var marker = row.querySelector("[data-attention-marker]");
        marker.hidden = !endpoint.attention;
        marker.title = endpoint.attention || "";
        row.querySelector("[data-unserved-marker]").hidden = !unserved(endpoint);
      });
    }

    var refresh = debounced(function () {
      return getJson(config.api + "?team=" + encodeURIComponent(team) + "&limit=500").then(render);
    });

    document.addEventListener("studiolo:event", function (event) {
      var message = event.detail;
      if (!message || message.team !== team || EVENTS.indexOf(message.event) === -1) return;
      var data = message.data || {};
      if (message.event === "endpoint.deleted") {
        var row = table.querySelector('tr[data-endpoint-id="' + Number(data.id) + '"]');
        if (row) {
          row.classList.add("gone");
          var old = row.querySelector("[data-status-badge]");
          if (old) {
            var gone = element("span", "status status-gray", "Deleted");
            gone.setAttribute("data-status-badge", "");
            gone.setAttribute("data-status", "Deleted");
            old.replaceWith(gone);
          }
        }
        return;
      }
      // The status is in the event: show it at once; the counts come with the re-read.
      if (message.event === "endpoint.status") {
        var shown = table.querySelector('tr[data-endpoint-id="' + Number(data.id) + '"]');
        if (shown) {
          setBadge(shown.querySelector("[data-status-badge]"), config.colours, config.labels, data.status);
        }
      }
      refresh();
    });
  }

  // --- the endpoint page -----------------------------------------------------------------

  function setupEndpoint(root, config) {
    var busy = config.busy.indexOf(config.status) !== -1;
    var poller = null;
    var gone = false;

    function cell(row, className, text) {
      var td = element("td", className);
      if (text !== undefined) td.appendChild(element("code", "", text));
      row.appendChild(td);
      return td;
    }

    function renderVariants(variants) {
      var body = root.querySelector("[data-variants]");
      if (!body) return;
      while (body.firstChild) body.removeChild(body.firstChild);
      variants.forEach(function (variant) {
        var row = element("tr");
        row.setAttribute("data-variant", variant.name);
        cell(row, "", variant.name);
        cell(row, "", variant.model);
        var pkg = cell(row, "nowrap");
        if (variant.package) {
          var link = element("a", "version-ref", variant.package);
          link.href = packageLink(variant.package);
          pkg.appendChild(link);
          pkg.appendChild(document.createTextNode(" "));
          pkg.appendChild(badge(config.approval_colours, config.approval_labels, variant.approval_status));
        } else {
          pkg.appendChild(element("span", "muted", "image, no package"));
        }
        cell(row, "", variant.instance_type);
        row.appendChild(element("td", "num", variant.instance_count));
        row.appendChild(element("td", "num", Math.round(variant.initial_weight * 100) / 100));
        body.appendChild(row);
      });
    }

    function renderInstances(instances, endpoint) {
      var body = root.querySelector("[data-instance-rows]");
      while (body.firstChild) body.removeChild(body.firstChild);
      if (!instances.length) {
        var empty = element("tr");
        empty.setAttribute("data-empty", "");
        var td = element("td", "empty", "No instances.");
        td.colSpan = 6;
        empty.appendChild(td);
        body.appendChild(empty);
        return;
      }
      instances.forEach(function (instance) {
        var row = element("tr");
        row.setAttribute("data-instance", instance.container);
        var first = cell(row, "", instance.container || "—");
        if (!instance.current) {
          first.appendChild(element("span", "row-sub", endpoint.pending_config ? "new config" : "old config"));
        }
        cell(row, "", instance.variant);
        var status = element("td", "nowrap");
        status.appendChild(badge(config.instance_colours, config.instance_labels, instance.status));
        row.appendChild(status);
        cell(row, "", instance.address || "—");
        row.appendChild(element("td", "nowrap", instance.last_check_at ? formatTime(instance.last_check_at) : "—"));
        row.appendChild(element("td", "instance-message", instance.message));
        body.appendChild(row);
      });
    }

    // The instances' moves, newest first, as the server draws them.
    function renderInstanceHistory(moves) {
      var body = root.querySelector("[data-instance-history]");
      while (body.firstChild) body.removeChild(body.firstChild);
      if (!moves.length) {
        var empty = element("tr");
        empty.setAttribute("data-empty", "");
        var td = element("td", "empty", "No instance has moved yet.");
        td.colSpan = 5;
        empty.appendChild(td);
        body.appendChild(empty);
        return;
      }
      moves.forEach(function (move) {
        var row = element("tr");
        row.setAttribute("data-move", move.container);
        var when = element("td", "nowrap");
        var time = element("time", "", formatTime(move.at));
        time.setAttribute("datetime", move.at);
        when.appendChild(time);
        row.appendChild(when);
        var container = cell(row, "", move.container || "—");
        container.appendChild(element("span", "row-sub", move.variant));
        var change = element("td", "nowrap");
        if (move.from_status) {
          change.appendChild(badge(config.instance_colours, config.instance_labels, move.from_status));
          change.appendChild(document.createTextNode(" → "));
        }
        change.appendChild(badge(config.instance_colours, config.instance_labels, move.to_status));
        row.appendChild(change);
        row.appendChild(element("td", "nowrap timeline-actor", move.actor));
        row.appendChild(element("td", "instance-message", move.message));
        body.appendChild(row);
      });
    }

    function renderEvents(events) {
      var list = root.querySelector("[data-events]");
      while (list.firstChild) list.removeChild(list.firstChild);
      events.forEach(function (item) {
        var colour = item.to_status ? config.colours[item.to_status] || "gray" : "gray";
        var li = element("li", "timeline-item");
        var dot = element("span", "timeline-dot dot-" + colour);
        dot.setAttribute("aria-hidden", "true");
        li.appendChild(dot);
        var body = element("div", "timeline-body");
        if (item.to_status) {
          var title = element("div", "timeline-title");
          title.appendChild(badge(config.colours, {}, item.to_status));
          body.appendChild(title);
        }
        if (item.message) body.appendChild(element("div", "timeline-message", item.message));
        var meta = element("div", "timeline-meta");
        meta.appendChild(element("span", "timeline-actor", item.actor));
        meta.appendChild(document.createTextNode(" · "));
        var time = element("time", "", formatTime(item.at));
        time.setAttribute("datetime", item.at);
        meta.appendChild(time);
        body.appendChild(meta);
        li.appendChild(body);
        list.appendChild(li);
      });
    }

    function markGone() {
      gone = true;
      stopPolling();
      root.querySelector("[data-gone]").hidden = false;
      document.querySelectorAll("[data-deploy-actions], [data-update-form], [data-try-form]").forEach(function (node) {
        node.querySelectorAll("button, input, select, textarea").forEach(function (control) { control.disabled = true; });
      });
      var header = document.querySelector(".page-header h1 [data-status-badge]");
      if (header) {
        var deleted = element("span", "status status-gray changed", "Deleted");
        deleted.setAttribute("data-status-badge", "");
        deleted.setAttribute("data-status", "Deleted");
        header.replaceWith(deleted);
      }
    }

    function render(endpoint) {
      if (endpoint === null) {
        markGone();
        return;
      }
      root.setAttribute("data-status", endpoint.status);
      setBadge(
        document.querySelector(".page-header h1 [data-status-badge]"), config.colours, config.labels, endpoint.status
      );
      setText(document, "[data-config]", endpoint.config);
      var pending = document.querySelector("[data-pending-config]");
      if (pending) {
        pending.hidden = !endpoint.pending_config;
        setText(pending, "[data-pending-config-name]", endpoint.pending_config || "");
      }
      var note = root.querySelector("[data-pending-note]");
      if (note && !endpoint.pending_config) note.hidden = true;
      var attention = root.querySelector("[data-attention]");
      attention.hidden = !endpoint.attention;
      setText(attention, "[data-attention-text]", endpoint.attention || "");
      var failure = root.querySelector("[data-failure]");
      failure.hidden = !endpoint.failure_reason;
      setText(failure, "[data-failure-reason]", endpoint.failure_reason || "");
      setText(root, "[data-healthy]", endpoint.healthy_count);
      setText(root, "[data-total]", endpoint.instance_count);
      root.querySelector("[data-unserved-marker]").hidden = !unserved(endpoint);
      setText(root, "[data-updated]", formatTime(endpoint.updated_at).slice(0, 16));
      renderVariants(endpoint.variants);
      renderInstances(endpoint.instances, endpoint);
      renderInstanceHistory(endpoint.instance_history);
      renderEvents(endpoint.events);
      busy = config.busy.indexOf(endpoint.status) !== -1;
      if (busy) startPolling();
      else stopPolling();
    }

    var refresh = debounced(function () {
      if (gone) return null;
      return getJson(config.api).then(render);
    });

    function startPolling() {
      if (poller === null) poller = window.setInterval(refresh, BUSY_POLL_MS);
    }

    function stopPolling() {
      if (poller !== null) {
        window.clearInterval(poller);
        poller = null;
      }
    }

    function renderTraffic(answer) {
      if (!answer) return;
      setText(root, "[data-traffic-count]", answer.totals.count);
      setText(root, "[data-traffic-4xx]", answer.totals.errors_4xx);
      setText(root, "[data-traffic-5xx]", answer.totals.errors_5xx);
      if (!window.Plotly) return;
      Object.keys(answer.figures).forEach(function (key) {
        var plot = root.querySelector('[data-chart="' + key + '"] [data-figure-id]');
        var figure = answer.figures[key];
        if (plot) window.Plotly.react(plot, figure.data, figure.layout, PLOT_OPTIONS);
      });
    }

    var refreshTraffic = debounced(function () {
      if (gone) return null;
      return getJson(config.traffic).then(renderTraffic);
    });

    document.addEventListener("studiolo:event", function (event) {
      var message = event.detail;
      if (!message || message.team !== config.team) return;
      var data = message.data || {};
      if (Number(data.id) !== Number(config.endpoint)) return;
      if (message.event === TRAFFIC_EVENT) {
        refreshTraffic();
        return;
      }
      if (EVENTS.indexOf(message.event) === -1) return;
      if (message.event === "endpoint.deleted") {
        markGone();
        return;
      }
      refresh();
    });
    if (busy) startPolling();
  }

  // --- traffic charts ------------------------------------------------------------------------

  function drawCharts() {
    if (!window.Plotly) return;
    document.querySelectorAll("[data-figure-id]").forEach(function (plot) {
      var figure = readConfig(plot.getAttribute("data-figure-id"));
      if (!figure) return;
      window.Plotly.newPlot(plot, figure.data, figure.layout, PLOT_OPTIONS);
    });
  }

  // --- the "try it" console --------------------------------------------------------------------

  function setupConsole(panel) {
    var form = panel.querySelector("[data-try-form]");
    var send = panel.querySelector("[data-try-send]");
    var result = panel.querySelector("[data-try-result]");
    var statusNode = panel.querySelector("[data-try-status]");
    var latencyNode = panel.querySelector("[data-try-latency]");
    var variantNode = panel.querySelector("[data-try-variant]");
    var headersNode = panel.querySelector("[data-try-headers]");
    var responseNode = panel.querySelector("[data-try-response]");
    var token = null; // {secret, expires}: kept in this page's memory only
    var SHOWN_HEADERS = ["content-type", "x-amzn-invoked-production-variant", "x-amzn-sagemaker-custom-attributes", "content-length"];

    function csrfToken() {
      var input = form.querySelector("input[name=csrfmiddlewaretoken]");
      return input ? input.value : "";
    }

    function getToken(force) {
      // A minute of margin: a token that expires mid-request would answer 401.
      if (!force && token && token.expires - Date.now() > 60000) return Promise.resolve(token.secret);
      return window.fetch(panel.getAttribute("data-token-url"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      }).then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) {
            throw new Error((body.error && body.error.message) || "HTTP " + response.status);
          }
          token = { secret: body.token, expires: Date.parse(body.expires_at) };
          return token.secret;
        });
      });
    }

    function invoke(secret) {
      var headers = {
        Authorization: "Bearer " + secret,
        "Content-Type": panel.querySelector("[data-try-content-type]").value,
        // The name may exist in another of the user's teams too: say which one.
        "X-Studiolo-Team": panel.getAttribute("data-team"),
      };
      var accept = panel.querySelector("[data-try-accept]").value;
      if (accept) headers.Accept = accept;
      var started = window.performance.now();
      return window.fetch(panel.getAttribute("data-path"), {
        method: "POST",
        credentials: "omit", // the data plane takes the bearer token, never the session
        headers: headers,
        body: panel.querySelector("[data-try-body]").value,
      }).then(function (response) {
        return response.text().then(function (text) {
          return { response: response, text: text, ms: window.performance.now() - started };
        });
      });
    }

    function show(outcome) {
      var response = outcome.response;
      result.hidden = false;
      statusNode.textContent = response.status + " " + (response.statusText || "");
      statusNode.className = "try-status " + (response.ok ? "ok" : "error");
      latencyNode.textContent = outcome.ms.toFixed(1) + " ms";
      var variant = response.headers.get("x-amzn-invoked-production-variant");
      variantNode.textContent = variant ? "variant " + variant : "";
      while (headersNode.firstChild) headersNode.removeChild(headersNode.firstChild);
      SHOWN_HEADERS.forEach(function (name) {
        var value = response.headers.get(name);
        if (value === null) return;
        var row = element("tr");
        row.appendChild(element("th", "", name));
        row.lastChild.setAttribute("scope", "row");
        row.appendChild(element("td", "", value));
        headersNode.appendChild(row);
      });
      var text = outcome.text;
      if ((response.headers.get("content-type") || "").indexOf("json") !== -1) {
        try {
          text = JSON.stringify(JSON.parse(text), null, 2);
        } catch (error) { /* shown as it came */ }
      }
      responseNode.textContent = text;
    }

    function fail(error) {
      result.hidden = false;
      statusNode.textContent = "Not sent";
      statusNode.className = "try-status error";
      latencyNode.textContent = "";
      variantNode.textContent = "";
      while (headersNode.firstChild) headersNode.removeChild(headersNode.firstChild);
      responseNode.textContent = String(error && error.message ? error.message : error);
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      send.disabled = true;
      getToken(false)
        .then(invoke)
        .then(function (outcome) {
          // A token revoked or expired meanwhile: one fresh token, one more try.
          if (outcome.response.status === 401) return getToken(true).then(invoke);
          return outcome;
        })
        .then(show, fail)
        .then(function () { send.disabled = false; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.querySelector("[data-endpoints-table]");
    var listConfig = readConfig("endpoints-live-config");
    if (table && listConfig) setupList(table, listConfig);
    var page = document.querySelector("[data-endpoint-page]");
    var pageConfig = readConfig("endpoint-live-config");
    if (page && pageConfig) setupEndpoint(page, pageConfig);
    drawCharts();
    var panel = document.querySelector("[data-try]");
    if (panel) setupConsole(panel);
  });
})();

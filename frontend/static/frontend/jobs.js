/* Studiolo jobs pages: live list rows, the job page's log/timeline/charts, the new-job form.
 *
 * The list listens to `studiolo:event` (team events re-dispatched by studio.js); the job page
 * opens its own socket, /ws/jobs/<id>/logs. Server data is only ever written with
 * textContent. The log keeps at most `tail` lines in the DOM however long the job prints.
 */
(function () {
  "use strict";

  var shared = window.Studiolo;
  var readConfig = shared.readConfig;
  var element = shared.element;

  // --- shared ----------------------------------------------------------------------------

  function pad(number) {
    return number < 10 ? "0" + number : String(number);
  }

  // Same output as frontend.jobs.display.format_duration.
  function formatDuration(totalSeconds) {
    var seconds = Math.max(0, Math.floor(totalSeconds));
    if (seconds < 60) return seconds + "s";
    var minutes = Math.floor(seconds / 60);
    seconds = seconds % 60;
    if (minutes < 60) return minutes + "m " + pad(seconds) + "s";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    if (hours < 24) return hours + "h " + pad(minutes) + "m";
    return Math.floor(hours / 24) + "d " + (hours % 24) + "h";
  }

  function formatTime(date) {
    return date.toISOString().slice(0, 19).replace("T", " ");
  }

  // Durations of active jobs count up once a second; a terminal status removes data-since.
  var ticker = null;
  function startDurationTicker() {
    if (ticker !== null) return;
    function tick() {
      var now = Date.now();
      document.querySelectorAll("[data-since]").forEach(function (cell) {
        var since = Date.parse(cell.getAttribute("data-since"));
        if (!isNaN(since)) cell.textContent = formatDuration((now - since) / 1000);
      });
    }
    ticker = window.setInterval(tick, 1000);
  }

  function setBadge(badge, status, config) {
    if (!badge || badge.getAttribute("data-status") === status) return;
    var colour = config.colours[status] || "gray";
    badge.className = "status status-" + colour + " changed";
    badge.setAttribute("data-status", status);
    badge.textContent = config.labels[status] || status;
  }

  function statusBadge(status, config) {
    var badge = element("span", "status status-" + (config.colours[status] || "gray"));
    badge.setAttribute("data-status-badge", "");
    badge.setAttribute("data-status", status);
    badge.textContent = config.labels[status] || status;
    return badge;
  }

  // Same as frontend.jobs.display.host_hue: algo-1..algo-6 get hues 1..6, then again.
  var HOST_HUES = 6;
  function hostHue(host) {
    var match = /^algo-(\d+)$/.exec(host);
    if (!match || Number(match[1]) < 1) return 0;
    return ((Number(match[1]) - 1) % HOST_HUES) + 1;
  }

  // --- the list --------------------------------------------------------------------------

  function setupJobList(table, config) {
    var team = table.getAttribute("data-team");
    var hint = document.querySelector("[data-new-jobs]");
    var hintText = document.querySelector("[data-new-jobs-text]");
    var announced = {};
    var search = (config.search || "").toLowerCase();

    function matches(status, name) {
      if (config.statuses.length && config.statuses.indexOf(status) === -1) return false;
      return !search || String(name || "").toLowerCase().indexOf(search) !== -1;
    }

    // Ids grow with creation: a job newer than the newest row would sit above it. Older
    // jobs not on this page changed too, but they belong to other pages or filters.
    function announce(id) {
      if (!config.first_page || !(id > config.newest_id) || announced[id]) return;
      announced[id] = true;
      var count = Object.keys(announced).length;
      hintText.textContent = count === 1 ? "1 new job." : count + " new jobs.";
      hint.hidden = false;
    }

    function updateRow(row, data) {
      setBadge(row.querySelector("[data-status-badge]"), data.status, config);
      var secondary = row.querySelector("[data-secondary]");
      if (secondary) {
        secondary.textContent = config.secondary_labels[data.secondary_status] || data.secondary_status;
      }
      if (data.terminal) {
        var duration = row.querySelector("[data-duration]");
        if (duration) duration.removeAttribute("data-since");
      }
    }

    document.addEventListener("studiolo:event", function (event) {
      var message = event.detail;
      if (!message || message.team !== team || !message.data) return;
      var data = message.data;
      if (message.event === "job.status") {
        var id = Number(data.id);
        var row = table.querySelector('tr[data-job-id="' + id + '"]');
        if (row) {
          updateRow(row, data);
        } else if (matches(data.status, data.name)) {
          announce(id);
        }
      } else if (message.event === "audit" && data.action === "job.created") {
        if (matches("Pending", data.object_repr)) announce(Number(data.object_id));
      }
    });
  }

  // --- the job page ------------------------------------------------------------------------

  function setupLog(root, config) {
    var log = root.querySelector("[data-log]");
    var follow = root.querySelector("[data-log-follow]");
    var empty = root.querySelector("[data-log-empty]");
    var truncated = root.querySelector("[data-log-truncated]");
    var shown = root.querySelector("[data-log-shown]");
    var totalNodes = root.querySelectorAll("[data-log-total], [data-log-count]");
    var lastSeq = config.last_seq;
    var total = config.total;
    var pending = [];
    var frame = null;
    var following = true;

    function atBottom() {
      return log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    }

    log.addEventListener("scroll", function () {
      following = atBottom();
      follow.hidden = following;
    });
    follow.addEventListener("click", function () {
      following = true;
      follow.hidden = true;
      log.scrollTop = log.scrollHeight;
    });
    log.scrollTop = log.scrollHeight;

    // A job of several instances: each line says its host, and a filter shows one host's
    // lines (the platform's own lines, with no host, always stay).
    var hostFilter = root.querySelector("[data-log-host-filter]");
    var filterEmpty = root.querySelector("[data-log-filter-empty]");
    var shownHost = hostFilter ? hostFilter.value : "";

    function lineVisible(host) {
      return !shownHost || !host || host === shownHost;
    }

    function lineNode(line) {
      var known = { stderr: true, system: true, track: true };
      var stream = known[line.stream] ? line.stream : "stdout";
      var host = String(line.host || "");
      var node = element("div", "log-line log-" + stream);
      node.setAttribute("data-seq", String(line.seq));
      node.appendChild(element("span", "log-seq", line.seq));
      var text = element("span", "log-text");
      if (config.show_hosts) {
        node.setAttribute("data-host", host);
        if (host) text.appendChild(element("span", "log-host log-host-" + hostHue(host), host));
        node.hidden = !lineVisible(host);
      }
      text.appendChild(document.createTextNode(String(line.line)));
      node.appendChild(text);
      return node;
    }

    function updateFilterEmpty() {
      if (!filterEmpty) return;
      filterEmpty.hidden = !shownHost || log.childElementCount === 0 ||
        log.querySelector(".log-line:not([hidden])") !== null;
    }

    if (hostFilter) {
      hostFilter.addEventListener("change", function () {
        shownHost = hostFilter.value;
        for (var node = log.firstElementChild; node; node = node.nextElementSibling) {
          node.hidden = !lineVisible(node.getAttribute("data-host"));
        }
        updateFilterEmpty();
        following = true;
        follow.hidden = true;
        log.scrollTop = log.scrollHeight;
      });
    }

    function updateCounts() {
      var rendered = log.childElementCount;
      totalNodes.forEach(function (node) { node.textContent = String(total); });
      shown.textContent = String(rendered);
      truncated.hidden = total <= rendered;
      empty.hidden = rendered > 0;
      updateFilterEmpty();
    }

    function render() {
      frame = null;
      if (!pending.length) return;
      var fragment = document.createDocumentFragment();
      pending.forEach(function (line) { fragment.appendChild(lineNode(line)); });
      pending = [];
      log.appendChild(fragment);
      var excess = log.childElementCount - config.tail;
      if (excess > 0) {
        var heightBefore = log.scrollHeight;
        var range = document.createRange();
        range.setStartBefore(log.firstElementChild);
        range.setEndAfter(log.children[excess - 1]);
        range.deleteContents();
        // Someone reading older lines keeps their place while the top is trimmed.
        if (!following) log.scrollTop -= heightBefore - log.scrollHeight;
      }
      updateCounts();
      if (following) log.scrollTop = log.scrollHeight;
    }

    return {
      add: function (lines) {
        for (var i = 0; i < lines.length; i += 1) {
          var line = lines[i];
          if (!(line.seq > lastSeq)) continue; // already shown (a reconnect replays from 1)
          pending.push(line);
          lastSeq = line.seq;
          if (line.seq > total) total = line.seq;
        }
        // A backlog of 100,000 lines arrives in pages; only the newest `tail` are drawn.
        if (pending.length > config.tail) pending.splice(0, pending.length - config.tail);
        if (pending.length && frame === null) frame = window.requestAnimationFrame(render);
      },
      end: function (lines) {
        if (lines > total) total = lines;
        render();
        updateCounts();
      },
    };
  }

  function setupTimeline(root, config) {
    var list = root.querySelector("[data-timeline]");
    return function (status) {
      var last = list.lastElementChild;
      if (
        last &&
        last.getAttribute("data-status") === status.status &&
        last.getAttribute("data-secondary") === status.secondary_status
      ) {
        return; // progress messages and replays on reconnect are not transitions
      }
      var colour = config.colours[status.status] || "gray";
      var item = element("li", "timeline-item fresh");
      item.setAttribute("data-status", status.status);
      item.setAttribute("data-secondary", status.secondary_status);
      item.appendChild(element("span", "timeline-dot dot-" + colour));
      item.lastChild.setAttribute("aria-hidden", "true");
      var body = element("div", "timeline-body");
      var title = element("div", "timeline-title");
      title.appendChild(statusBadge(status.status, config));
      title.appendChild(document.createTextNode(" "));
      title.appendChild(element(
        "span", "secondary", config.secondary_labels[status.secondary_status] || status.secondary_status
      ));
      body.appendChild(title);
      if (status.message) body.appendChild(element("div", "timeline-message", status.message));
      var meta = element("div", "timeline-meta");
      var now = new Date();
      var time = element("time", null, formatTime(now));
      time.setAttribute("datetime", now.toISOString());
      meta.appendChild(time); // the live message does not say who; a reload does
      body.appendChild(meta);
      item.appendChild(body);
      list.appendChild(item);
    };
  }

  function setupCharts(root) {
    var charts = {};
    if (!window.Plotly) return charts;
    root.querySelectorAll("[data-metric]").forEach(function (plot) {
      var figure = readConfig(plot.getAttribute("data-figure-id"));
      if (!figure) return;
      window.Plotly.newPlot(plot, figure.data, figure.layout, {
        displayModeBar: false,
        responsive: true,
      });
      charts[plot.getAttribute("data-metric")] = plot;
    });
    return charts;
  }

  function addPoints(charts, points) {
    var byName = {};
    points.forEach(function (point) {
      if (!charts[point.name]) return;
      var series = byName[point.name] || (byName[point.name] = { x: [], y: [] });
      series.x.push(point.step);
      series.y.push(typeof point.value === "number" && isFinite(point.value) ? point.value : null);
    });
    Object.keys(byName).forEach(function (name) {
      var plot = charts[name];
      window.Plotly.extendTraces(plot, { x: [byName[name].x], y: [byName[name].y] }, [0]);
      if (plot.layout && plot.layout.annotations && plot.layout.annotations.length) {
        window.Plotly.relayout(plot, { annotations: [] });
      }
    });
  }

  function setupJobPage(root, config) {
    var log = setupLog(root, config);
    var appendTransition = setupTimeline(root, config);
    var charts = setupCharts(root);
    var state = root.querySelector("[data-log-state]");
    var ended = !config.connect;

    function setState(value) {
      state.setAttribute("data-log-state", value);
      state.textContent = value;
    }

    // Batch transform: records (and files) done / total, from the status events.
    function applyProgress(progress) {
      var panel = root.querySelector("[data-progress]");
      if (!panel || !progress) return;
      ["records_done", "records_total", "files_done", "files_total"].forEach(function (key) {
        var node = panel.querySelector("[data-" + key.replace("_", "-") + "]");
        if (node) node.textContent = String(progress[key]);
      });
      var bar = panel.querySelector("[data-progress-bar]");
      bar.max = Math.max(1, progress.records_total);
      bar.value = progress.records_done;
    }

    function applyStatus(status) {
      setBadge(document.querySelector(".page-header [data-status-badge]"), status.status, config);
      root.setAttribute("data-status", status.status);
      var secondary = document.querySelector("[data-job-secondary]");
      if (secondary) {
        secondary.textContent = config.secondary_labels[status.secondary_status] || status.secondary_status;
      }
      var message = document.querySelector("[data-job-message]");
      if (message) message.textContent = status.message ? " — " + status.message : "";
      appendTransition(status);
      applyProgress(status.progress);
      var training = root.querySelector("[data-training-time]");
      var running = status.secondary_status === "Training" || status.secondary_status === "Transforming";
      if (training && running) {
        // Started now, as far as this page knows; a reload shows the server's start time.
        if (!training.hasAttribute("data-since")) {
          training.setAttribute("data-since", new Date().toISOString());
          startDurationTicker();
        }
      } else if (training) {
        training.removeAttribute("data-since");
      }
      if (status.status !== "Pending" && status.status !== "InProgress") {
        var stop = document.querySelector("[data-stop-form]");
        if (stop) stop.remove();
      }
      if (config.terminal.indexOf(status.status) !== -1) {
        root.querySelectorAll("[data-since]").forEach(function (cell) { cell.removeAttribute("data-since"); });
        var pendingNote = root.querySelector("[data-artifacts-pending]");
        var endedNote = root.querySelector("[data-artifacts-ended]");
        if (pendingNote) pendingNote.hidden = true;
        if (endedNote) endedNote.hidden = false;
      }
      if (status.status === "Failed" && status.failure_reason) {
        root.querySelector("[data-failure-reason]").textContent = status.failure_reason;
        root.querySelector("[data-failure]").hidden = false;
      }
    }

    function handle(message) {
      if (message.type === "lines") {
        log.add(message.lines || []);
      } else if (message.type === "status") {
        applyStatus(message.status);
      } else if (message.type === "metrics") {
        addPoints(charts, message.points || []);
      } else if (message.type === "end") {
        ended = true;
        log.end(message.lines || 0);
        setState("ended");
      }
    }

    if (ended) return;
    var attempt = 0;
    function connect() {
      var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      var socket;
      try {
        socket = new WebSocket(scheme + "//" + window.location.host + config.socket);
      } catch (error) {
        retry();
        return;
      }
      socket.addEventListener("open", function () {
        attempt = 0;
        setState("live");
      });
      socket.addEventListener("message", function (event) {
        var message;
        try {
          message = JSON.parse(event.data);
        } catch (error) {
          return; // not JSON (a NaN metric value): skip the message, keep the stream
        }
        if (message && typeof message === "object") handle(message);
      });
      socket.addEventListener("close", function (event) {
        if (ended) return;
        if (event.code === 4401 || event.code === 4404) {
          setState("offline");
          return; // signed out or no longer allowed: retrying will not help
        }
        setState("offline");
        retry();
      });
    }
    function retry() {
      var delay = Math.min(30000, 1000 * Math.pow(2, attempt));
      attempt += 1;
      window.setTimeout(connect, delay / 2 + Math.random() * (delay / 2));
    }
    connect();
  }

  // --- the new-job form --------------------------------------------------------------------

  function setupJobForm(form) {
    var framework = form.querySelector("[name=framework]");
    var imageField = form.querySelector("[data-image-field]");
    if (!framework || !imageField) return;
    function sync() {
      imageField.classList.toggle("is-hidden", framework.value !== "");
    }
    framework.addEventListener("change", sync);
    sync();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.querySelector("[data-jobs-table]");
    var listConfig = readConfig("jobs-live-config");
    if (table && listConfig) setupJobList(table, listConfig);
    var page = document.querySelector("[data-job-page]");
    var pageConfig = readConfig("job-live-config");
    if (page && pageConfig) setupJobPage(page, pageConfig);
    var form = document.querySelector("[data-job-form]");
    if (form) setupJobForm(form);
    if (document.querySelector("[data-since]")) startDurationTicker();
  });
})();

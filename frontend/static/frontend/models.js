/* Model registry pages: the group page's version comparison chart, and the live package page
 * and review inbox (they follow `model_package.*` events heard on /ws/events by studio.js).
 *
 * On an event the page re-reads the package (or the inbox) from the REST API with the
 * session and redraws from that answer: one source of truth, whatever order events arrive in.
 * Data from the server is only ever written with textContent, never innerHTML.
 */
(function () {
  "use strict";

  var shared = window.Studiolo;
  var readConfig = shared.readConfig;
  var element = shared.element;
  var formatTime = shared.formatTime;
  var getJson = shared.getJson;

  function isRegistryEvent(message) {
    return message && (message.event === "model_package.approval" || message.event === "model_package.created");
  }

  // --- group page: compare versions on one metric ----------------------------------------

  function setupCompare(section) {
    var figures = readConfig("compare-figures");
    var select = section.querySelector("[data-compare-metric]");
    var plot = section.querySelector("[data-compare-plot]");
    if (!figures || !select || !plot || !window.Plotly) return;
    function draw() {
      var figure = figures[select.value];
      if (!figure) return;
      window.Plotly.react(plot, figure.data, figure.layout, { displayModeBar: false, responsive: true });
    }
    select.addEventListener("change", draw);
    draw();
  }

  // --- package page ---------------------------------------------------------------------

  function badge(config, status) {
    var node = element("span", "status status-" + (config.colours[status] || "gray"), config.labels[status] || status);
    node.setAttribute("data-status-badge", "");
    node.setAttribute("data-status", status);
    return node;
  }

  function setupPackage(root) {
    var config = readConfig("package-live-config");
    if (!config) return;
    var packageId = Number(config.package);
    var pending = null;

    function render(pkg) {
      var previous = root.getAttribute("data-status");
      root.setAttribute("data-status", pkg.approval_status);
      var header = document.querySelector(".page-header h1 [data-status-badge]");
      if (header && header.getAttribute("data-status") !== pkg.approval_status) {
        var fresh = badge(config, pkg.approval_status);
        fresh.classList.add("changed");
        header.replaceWith(fresh);
      }
      var count = root.querySelector("[data-approval-count]");
      if (count) {
        var text = pkg.votes_decided
          ? "decided by " + pkg.votes.length + " vote" + (pkg.votes.length === 1 ? "" : "s")
          : pkg.approvals + " of " + pkg.approvals_required + " approval" + (pkg.approvals_required === 1 ? "" : "s");
        if (count.textContent !== text) {
          count.textContent = text;
          count.classList.remove("changed");
          void count.offsetWidth;
          count.classList.add("changed");
        }
      }
      var votes = root.querySelector("[data-votes]");
      if (votes) {
        while (votes.firstChild) votes.removeChild(votes.firstChild);
        pkg.votes.forEach(function (vote) {
          var item = element("li", "vote vote-" + vote.decision);
          item.appendChild(element("span", "vote-decision", vote.decision === "approve" ? "Approve" : "Reject"));
          item.appendChild(document.createTextNode(" "));
          item.appendChild(element("span", "timeline-actor", vote.actor));
          item.appendChild(element("span", "vote-comment", vote.comment));
          votes.appendChild(item);
        });
        var empty = root.querySelector("[data-votes-empty]");
        if (empty) empty.hidden = pkg.votes.length > 0;
      }
      var history = root.querySelector("[data-history]");
      if (history) {
        var shown = history.children.length;
        pkg.transitions.slice(shown).forEach(function (row) {
          var colour = config.colours[row.to_status] || "gray";
          var item = element("li", "timeline-item fresh");
          item.appendChild(element("span", "timeline-dot dot-" + colour));
          var body = element("div", "timeline-body");
          var title = element("div", "timeline-title");
          title.appendChild(badge(config, row.to_status));
          body.appendChild(title);
          body.appendChild(element("div", "timeline-message", row.comment));
          var meta = element("div", "timeline-meta");
          meta.appendChild(element("span", "timeline-actor", row.actor));
          meta.appendChild(document.createTextNode(" · "));
          var time = element("time", "", formatTime(row.at));
          time.setAttribute("datetime", row.at);
          meta.appendChild(time);
          body.appendChild(meta);
          item.appendChild(body);
          history.appendChild(item);
        });
      }
      // A new round began elsewhere: the buttons of the old status no longer fit; the
      // server renders the right ones (or none) on the next visit.
      var form = root.querySelector("[data-decision-form]");
      if (form && previous !== pkg.approval_status) {
        var note = element("p", "muted decision-note", "The status changed to " + (config.labels[pkg.approval_status] || pkg.approval_status) + ". ");
        var link = element("a", "", "Reload to decide again");
        link.href = window.location.pathname;
        note.appendChild(link);
        form.replaceWith(note);
      }
    }

    function refresh() {
      if (pending) return;
      pending = getJson(config.api).then(render, function () {}).then(function () { pending = null; });
    }

    document.addEventListener("studiolo:event", function (event) {
      var message = event.detail;
      if (!isRegistryEvent(message) || Number((message.data || {}).id) !== packageId) return;
      refresh();
    });
  }

  // --- inbox ------------------------------------------------------------------------------

  function setupInbox(body) {
    var config = readConfig("inbox-live-config");
    if (!config) return;

    function render(answer) {
      while (body.firstChild) body.removeChild(body.firstChild);
      if (!answer.results.length) {
        var row = element("tr");
        row.setAttribute("data-empty", "");
        var cell = element("td", "empty", "Nothing is waiting for you. New packages appear here as they are registered.");
        cell.colSpan = 5;
        row.appendChild(cell);
        body.appendChild(row);
        return;
      }
      answer.results.forEach(function (pkg) {
        var row = element("tr");
        row.setAttribute("data-inbox-package", String(pkg.id));
        var first = element("td");
        var link = element("a", "version-ref", pkg.group + " v" + pkg.version);
        link.href = "/models/" + encodeURIComponent(pkg.group) + "/" + Number(pkg.version) + "/";
        first.appendChild(link);
        row.appendChild(first);
        row.appendChild(element("td", "", pkg.team));
        row.appendChild(element("td", "num", pkg.approvals + " of " + pkg.approvals_required));
        row.appendChild(element("td", "", pkg.created_by || "—"));
        row.appendChild(element("td", "nowrap", formatTime(pkg.created_at).slice(0, 16)));
        body.appendChild(row);
      });
    }

    document.addEventListener("studiolo:event", function (event) {
      if (!isRegistryEvent(event.detail)) return;
      getJson(config.api).then(render, function () {});
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var compare = document.querySelector("[data-compare]");
    if (compare) setupCompare(compare);
    var pkg = document.querySelector("[data-package-page]");
    if (pkg) setupPackage(pkg);
    var inbox = document.querySelector("[data-inbox-rows]");
    if (inbox) setupInbox(inbox);
  });
})();

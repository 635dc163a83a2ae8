/* Studiolo UI: live events over /ws/events and a few progressive enhancements.
 *
 * Every websocket message is re-dispatched as a `studiolo:event` CustomEvent on `document`
 * (detail = {event, team, at, data}) so page features listen without knowing the socket.
 * Data from the server is only ever written with textContent, never innerHTML.
 */
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  // --- the live connection -------------------------------------------------------------

  var BASE_DELAY_MS = 1000;
  var MAX_DELAY_MS = 30000;

  function setLiveState(state) {
    var dot = document.querySelector("[data-live-dot]");
    var label = document.querySelector("[data-live-label]");
    var wrap = document.querySelector("[data-live]");
    var text = { connected: "live", connecting: "connecting", offline: "offline" }[state];
    if (dot) dot.setAttribute("data-state", state);
    if (label) label.textContent = text;
    if (wrap) {
      wrap.title = state === "connected"
        ? "Live updates: connected"
        : state === "connecting" ? "Live updates: connecting…" : "Live updates: disconnected, retrying";
    }
    document.documentElement.setAttribute("data-live", state);
  }

  function startLiveEvents(path) {
    var socket = null;
    var attempt = 0;
    var timer = null;

    function connect() {
      timer = null;
      var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      setLiveState("connecting");
      try {
        socket = new WebSocket(scheme + "//" + window.location.host + path);
      } catch (error) {
        scheduleReconnect();
        return;
      }
      socket.addEventListener("open", function () {
        attempt = 0;
        setLiveState("connected");
      });
      socket.addEventListener("message", function (message) {
        var payload;
        try {
          payload = JSON.parse(message.data);
        } catch (error) {
          return;
        }
        if (payload && typeof payload === "object") {
          document.dispatchEvent(new CustomEvent("studiolo:event", { detail: payload }));
        }
      });
      socket.addEventListener("close", function () {
        socket = null;
        setLiveState("offline");
        scheduleReconnect();
      });
    }

    function scheduleReconnect() {
      if (timer !== null) return;
      // Exponential backoff with jitter, so a restarted server is not hit by every tab at once.
      var delay = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * Math.pow(2, attempt));
      delay = delay / 2 + Math.random() * (delay / 2);
      attempt += 1;
      timer = window.setTimeout(connect, delay);
    }

    function reconnectNow() {
      if (socket !== null) return;
      if (timer !== null) {
        window.clearTimeout(timer);
        timer = null;
      }
      attempt = 0;
      connect();
    }

    window.addEventListener("online", reconnectNow);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") reconnectNow();
    });
    connect();
  }

  // --- dashboard: recent activity and live counts --------------------------------------

  function formatTime(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) return "";
    return date.toISOString().slice(0, 19).replace("T", " ");
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // The JSON a template put in a <script type="application/json" id=...> (json_script).
  function readConfig(id) {
    var node = document.getElementById(id);
    if (!node) return null;
    try {
      return JSON.parse(node.textContent);
    } catch (error) {
      return null;
    }
  }

  // GET with the session; `nullOn404` makes a missing object null instead of an error.
  function getJson(url, nullOn404) {
    return window.fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (nullOn404 && response.status === 404) return null;
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      });
  }

  // For the page scripts (loaded after this one, deferred in document order).
  window.Studiolo = { element: element, formatTime: formatTime, getJson: getJson, readConfig: readConfig };

  function activityItem(message) {
    var data = message.data || {};
    var item = element("li", "activity-item fresh");
    if (data.id !== undefined) item.setAttribute("data-event-id", String(data.id));
    var time = element("time", "activity-time", formatTime(message.at));
    time.setAttribute("datetime", String(message.at || ""));
    item.appendChild(time);
    item.appendChild(element("span", "activity-actor", data.actor));
    item.appendChild(element("code", "activity-action", data.action));
    item.appendChild(element("span", "activity-object", data.object_repr || data.object_type || ""));
    return item;
  }

  function setupActivity(list) {
    var team = list.getAttribute("data-team");
    var limit = parseInt(list.getAttribute("data-limit") || "20", 10);
    document.addEventListener("studiolo:event", function (event) {
      var message = event.detail;
      if (message.event !== "audit" || message.team !== team) return;
      var id = message.data && message.data.id;
      if (id !== undefined && list.querySelector('[data-event-id="' + String(Number(id)) + '"]')) {
        return; // already on the page (rendered by the server, or a duplicate delivery)
      }
      var empty = list.querySelector("[data-activity-empty]");
      if (empty) empty.remove();
      list.insertBefore(activityItem(message), list.firstChild);
      while (list.children.length > limit) list.removeChild(list.lastChild);
    });
  }

  function setupLiveCounts() {
    var team = document.body.getAttribute("data-team");
    document.addEventListener("studiolo:event", function (event) {
      var message = event.detail;
      if (message.team !== team) return;
      document.querySelectorAll("[data-increments-on]").forEach(function (card) {
        if (card.getAttribute("data-increments-on") !== message.event) return;
        var value = card.querySelector("[data-card-value]");
        var current = parseInt(value.textContent, 10);
        if (isNaN(current)) return;
        value.textContent = String(current + 1);
        card.classList.remove("bumped");
        void card.offsetWidth; // restart the animation
        card.classList.add("bumped");
      });
    });
  }

  // A card counting things that come and go (active jobs): the set of ids not yet terminal.
  function setupTrackedCounts() {
    var team = document.body.getAttribute("data-team");
    document.querySelectorAll("[data-tracks]").forEach(function (card) {
      var ids = {};
      (card.getAttribute("data-tracked-ids") || "").split(",").forEach(function (id) {
        if (id) ids[id] = true;
      });
      var value = card.querySelector("[data-card-value]");
      document.addEventListener("studiolo:event", function (event) {
        var message = event.detail;
        if (message.team !== team || message.event !== card.getAttribute("data-tracks")) return;
        var id = String(Number((message.data || {}).id));
        var before = Object.keys(ids).length;
        if (message.data.terminal) delete ids[id];
        else ids[id] = true;
        var after = Object.keys(ids).length;
        if (after === before) return;
        value.textContent = String(after);
        card.classList.remove("bumped");
        void card.offsetWidth; // restart the animation
        card.classList.add("bumped");
      });
    });
  }

  // --- small enhancements --------------------------------------------------------------

  function setupCopyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var source = document.querySelector(button.getAttribute("data-copy"));
        if (!source) return;
        var label = button.querySelector("[data-copy-label]") || button;
        function done(text) {
          label.textContent = text;
          window.setTimeout(function () { label.textContent = "Copy"; }, 2000);
        }
        function fallback() {
          source.select();
          done(document.execCommand("copy") ? "Copied" : "Press Ctrl+C");
        }
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(source.value).then(function () { done("Copied"); }, fallback);
        } else {
          fallback();
        }
      });
    });
  }

  function setupForms() {
    document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupCopyButtons();
    setupForms();
    var activity = document.querySelector("[data-activity]");
    if (activity) setupActivity(activity);
    if (document.querySelector("[data-increments-on]")) setupLiveCounts();
    if (document.querySelector("[data-tracks]")) setupTrackedCounts();
    var eventsPath = document.body.getAttribute("data-events-path");
    if (eventsPath) startLiveEvents(eventsPath);
  });
})();

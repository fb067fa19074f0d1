/* The admin portal's script: charts drawn with uPlot from JSON in data attributes (labels are
 * data, never HTML: uPlot writes them as text; no <script> data blocks, which htmx drops when it
 * swaps), and the live telemetry chart fed by the WebSocket.
 * Loaded from this site only (the portal's CSP allows no inline script). */
(function () {
  "use strict";

  function readJson(text) {
    try { return text ? JSON.parse(text) : null; } catch (error) { return null; }
  }

  function xValue(x) {
    return typeof x === "number" ? x : Date.parse(x + "T00:00:00Z") / 1000;
  }

  var sockets = [];  // live charts' sockets, closed when htmx swaps the page away

  var COLOURS = ["#1b5fc1", "#2e9d57", "#c7731c", "#8a3ab9", "#b4232a", "#138a8a"];

  function makeChart(el, spec) {
    var width = Math.max(el.clientWidth || 0, 320);
    var bars = spec.kind === "bars" && uPlot.paths && uPlot.paths.bars;
    var series = [{}].concat(spec.series.map(function (s, i) {
      var line = { label: String(s.label), stroke: COLOURS[i % COLOURS.length], width: 2 };
      if (bars) {
        line.paths = uPlot.paths.bars({ size: [0.8 / spec.series.length, 40], align: 0, gap: 1 });
        line.fill = COLOURS[i % COLOURS.length] + "99";
        line.points = { show: false };
      }
      return line;
    }));
    var data = [spec.x.map(xValue)].concat(spec.series.map(function (s) { return s.values; }));
    var options = { width: width, height: 260, series: series, scales: { x: { time: true } } };
    el.replaceChildren();
    return new uPlot(options, data, el);
  }

  function drawCharts(root) {
    if (typeof uPlot === "undefined") { return; }
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.dataset.drawn) { return; }
      var spec = readJson(el.dataset.chart);
      if (!spec) { return; }
      el.dataset.drawn = "1";
      el.chart = makeChart(el, spec);
    });
    root.querySelectorAll("[data-live-telemetry]").forEach(startLive);
  }

  /* Live telemetry: the page carries a short-lived access token minted for this portal
   * session; the socket authenticates with it in its first frame (never in the URL). */
  function startLive(el) {
    if (el.dataset.live) { return; }
    var config = readJson(el.dataset.liveTelemetry);
    if (!config) { return; }
    el.dataset.live = "1";
    var metric = config.metric;
    var spec = { kind: "lines", x: [], series: [{ label: metric, values: [] }] };
    var chart = makeChart(el, spec);
    var status = document.getElementById(config.status_id);
    var points = 0;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + config.ws_path);
    sockets.push(socket);
    function say(text) { if (status) { status.textContent = text; } }
    socket.onopen = function () {
      socket.send(JSON.stringify({ type: "auth", data: { token: config.token } }));
    };
    socket.onmessage = function (event) {
      var frame = JSON.parse(event.data);
      if (frame.type === "auth.ok") {
        socket.send(JSON.stringify({ type: "subscribe", ref: "live",
                                     data: { channel: "appliance:" + config.appliance_id } }));
      } else if (frame.type === "subscribed") {
        say("Live: waiting for telemetry…");
      } else if (frame.type === "telemetry") {
        (frame.data.samples || []).forEach(function (sample) {
          if (typeof sample[metric] !== "number") { return; }
          var t = typeof sample.t === "number" ? sample.t / 1000 : Date.parse(sample.t) / 1000;
          spec.x.push(t);
          spec.series[0].values.push(sample[metric]);
          points += 1;
        });
        if (spec.x.length > 600) {
          spec.x.splice(0, spec.x.length - 600);
          spec.series[0].values.splice(0, spec.series[0].values.length - 600);
        }
        chart.setData([spec.x, spec.series[0].values]);
        el.dataset.points = String(points);
        say("Live: " + points + " samples");
      } else if (frame.type === "error") {
        say("Live telemetry refused: " + String(frame.data && frame.data.message));
      }
    };
    // The token is short-lived: a fresh one goes over the same socket a minute before it ends.
    var refresh = setInterval(function () {
      fetch(config.token_path, { credentials: "same-origin" })
        .then(function (reply) { return reply.ok ? reply.json() : null; })
        .then(function (fresh) {
          if (fresh && socket.readyState === WebSocket.OPEN) {
            socket.send(JSON.stringify({ type: "auth", data: { token: fresh.token } }));
          }
        });
    }, Math.max(30, config.expires_in - 60) * 1000);
    socket.onclose = function () {
      clearInterval(refresh);
      say("Live telemetry disconnected; reload to reconnect.");
    };
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target === document.body) {
      sockets.splice(0).forEach(function (socket) { socket.close(); });
    }
  });
  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawCharts(event.target); });
}());

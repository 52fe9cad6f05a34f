/* Statistics charts: draws uPlot charts from #charts' data-series JSON, and again after every htmx swap.
   (A data attribute, not a <script type="application/json">: htmx drops script tags from swapped content.) */
(function () {
  "use strict";

  var charts = [];
  var COLORS = { requests: "#2563eb", errors: "#dc2626", mean: "#0891b2", p95: "#7c3aed", speed: "#059669", ttft: "#d97706" };

  function series(label, color, scale, fill, dots) {
    // dots: sparse series (latency, speed) get points, so a lone busy minute still shows
    return { label: label, stroke: color, width: 2, scale: scale, fill: fill || undefined, spanGaps: false,
             points: { show: !!dots, size: 5, fill: color } };
  }

  function ms(u, values) {
    return values.map(function (v) { return v == null ? "" : (v >= 1000 ? (v / 1000).toFixed(1) + " s" : Math.round(v) + " ms"); });
  }

  var SPECS = {
    requests: function (p) {
      return { data: [p.t, p.requests, p.errors],
               series: [{}, series("Requests", COLORS.requests, "n", "rgba(37,99,235,0.08)"), series("Errors", COLORS.errors, "n")],
               axes: [{}, { scale: "n" }] };
    },
    latency: function (p) {
      return { data: [p.t, p.mean_ms, p.p95_ms],
               series: [{}, series("Mean", COLORS.mean, "ms", null, true), series("p95", COLORS.p95, "ms", null, true)],
               axes: [{}, { scale: "ms", values: ms, size: 60 }] };
    },
    speed: function (p) {
      return { data: [p.t, p.tokens_per_s, p.ttft_ms],
               series: [{}, series("Tokens/s", COLORS.speed, "tps", null, true), series("Time to first token", COLORS.ttft, "ms", null, true)],
               axes: [{}, { scale: "tps", size: 60 }, { scale: "ms", side: 1, values: ms, size: 60, grid: { show: false } }] };
    }
  };

  function draw() {
    var box = document.getElementById("charts");
    if (!box || !window.uPlot) { return; }
    if (!box.dataset.series) { return; }
    var payload = JSON.parse(box.dataset.series);
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    box.querySelectorAll(".chart").forEach(function (el) {
      var spec = SPECS[el.dataset.chart](payload.points);
      var width = Math.max(el.clientWidth || el.parentNode.clientWidth || 600, 280);
      var opts = { width: width, height: 200, series: spec.series, axes: spec.axes,
                   scales: { x: { time: true }, n: { range: function (u, lo, hi) { return [0, Math.max(hi, 1)]; } } },
                   legend: { live: false }, cursor: { drag: { x: false, y: false } } };
      charts.push(new window.uPlot(opts, spec.data, el));
    });
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(draw, 200);
  });

  document.addEventListener("DOMContentLoaded", function () {
    draw();
    // After any swap: a fresh #charts (new data, no chart drawn in it yet) gets its charts.
    // (htmx:load fires on the new content, which is in the document; the swapped-out element is not.)
    document.addEventListener("htmx:load", function () {
      var box = document.getElementById("charts");
      if (box && !box.querySelector(".uplot")) { draw(); }
    });
  });
})();

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

  // Every chart keeps the same room left and right of its plot, so the three time axes line up.
  var AXIS = 64;
  var COUNTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 1e6, 1e7];

  function decimals(step) {
    // As many decimals as the tick step needs (0.25 -> 2), so neighbouring ticks never print alike.
    for (var d = 0; d < 3; d++) {
      if (Math.abs(Math.round(step * Math.pow(10, d)) - step * Math.pow(10, d)) < 1e-6) { return d; }
    }
    return 3;
  }

  function ms(u, values, axisIdx, space, step) {
    // One unit per axis: seconds once a tick reaches a second, else milliseconds.
    var top = Math.max.apply(null, values.filter(function (v) { return v != null; }).concat([0]));
    var div = top >= 1000 ? 1000 : 1, unit = div === 1 ? " ms" : " s", places = decimals(step / div);
    return values.map(function (v) { return v == null ? "" : (v / div).toFixed(places) + unit; });
  }

  function fromZero(u, lo, hi) {
    // Starts at zero and has a range even without data (an axis without one is hidden, which would shift the plot).
    return [0, hi == null || hi <= 0 ? 1 : hi * 1.1];
  }

  var SPECS = {
    requests: function (p) {
      return { data: [p.t, p.requests, p.errors],
               series: [{}, series("Requests", COLORS.requests, "n", "rgba(37,99,235,0.08)"), series("Errors", COLORS.errors, "n")],
               axes: [{}, { scale: "n", incrs: COUNTS }], padRight: AXIS };
    },
    latency: function (p) {
      return { data: [p.t, p.mean_ms, p.p95_ms],
               series: [{}, series("Mean", COLORS.mean, "ms", null, true), series("p95", COLORS.p95, "ms", null, true)],
               axes: [{}, { scale: "ms", values: ms }], padRight: AXIS };
    },
    speed: function (p) {
      return { data: [p.t, p.tokens_per_s, p.ttft_ms],
               series: [{}, series("Tokens/s", COLORS.speed, "tps", null, true), series("Time to first token", COLORS.ttft, "ms", null, true)],
               axes: [{}, { scale: "tps" }, { scale: "ms", side: 1, values: ms, size: AXIS, grid: { show: false } }],
               padRight: 0 };
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
      var width = Math.max(el.clientWidth || el.parentNode.clientWidth || 600, 200);
      spec.axes[0] = { space: 64 };  // at least 64 px from one time label ("10:10am", 46 px) to the next
      spec.axes[1].size = AXIS;
      var opts = { width: width, height: 200, series: spec.series, axes: spec.axes, padding: [null, spec.padRight, null, 0],
                   scales: { x: { time: true }, n: { range: fromZero }, ms: { range: fromZero }, tps: { range: fromZero } },
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

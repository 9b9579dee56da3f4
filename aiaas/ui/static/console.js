// aiaas console: charts (uPlot), CSRF header on htmx and fetch calls, copy buttons. No build step.
(function () {
  "use strict";
  const aiaas = (window.aiaas = window.aiaas || {});

  aiaas.csrf = function () {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  };

  // POST JSON (or FormData) to a console endpoint with the session's CSRF token; throws Error(message) on failure.
  aiaas.post = async function (url, body) {
    const init = { method: "POST", headers: { "X-CSRF-Token": aiaas.csrf() }, credentials: "same-origin" };
    if (body instanceof FormData) init.body = body;
    else { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
    const r = await fetch(url, init);
    if (!r.ok) {
      let msg = r.status + " " + r.statusText;
      try { const j = await r.clone().json(); msg = (j.error && (j.error.message || j.error)) || msg; }
      catch (e) { msg = (await r.text()) || msg; }
      throw new Error(msg);
    }
    return r;
  };

  const COLORS = ["#0a58ca", "#a40e26", "#116329", "#7d4e00", "#6e40c9"];

  // data: {t: [...epoch s], <name>: [...]}; names: series to draw; opts: {height, width, spark, xTime}
  aiaas.chart = function (el, data, names, opts) {
    opts = opts || {};
    el.innerHTML = "";
    const xs = data.t || data.x || [];
    if (!xs.length || typeof uPlot === "undefined") {
      const p = document.createElement("div");
      p.className = "empty-chart";
      p.textContent = opts.empty || "no data yet";
      el.appendChild(p);
      return null;
    }
    const cols = [xs].concat(names.map((n) => data[n]));
    const series = [{}].concat(names.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true })));
    const spark = !!opts.spark;
    return new uPlot({
      width: opts.width || (spark ? 160 : Math.max(320, Math.min(560, el.clientWidth || 480))),
      height: opts.height || (spark ? 40 : 200),
      title: opts.title,
      series: series,
      scales: { x: { time: opts.xTime !== false } },
      legend: { show: !spark },
      cursor: { show: !spark },
      axes: spark ? [{ show: false }, { show: false }] : [{}, { label: opts.ylabel || "" }],
    }, cols, el);
  };

  function drawCharts(root) {
    root.querySelectorAll("[data-series]").forEach((el) => {
      const data = JSON.parse(el.dataset.series);
      const kind = el.dataset.kind;
      const spark = el.classList.contains("spark");
      if (kind === "latency") aiaas.chart(el, data, ["p50", "p99"], { title: "latency (ms)", empty: "no requests in the last hour" });
      else if (kind === "rps") aiaas.chart(el, data, ["rps"], { spark: spark, title: spark ? undefined : "requests / s", empty: spark ? "–" : "no requests in the last hour" });
      else aiaas.chart(el, data, (el.dataset.names || "").split(",").filter(Boolean), { title: el.dataset.title, xTime: el.dataset.xtime !== "false" });
    });
  }
  aiaas.drawCharts = drawCharts;

  document.addEventListener("DOMContentLoaded", () => {
    drawCharts(document);
    document.body.addEventListener("htmx:configRequest", (e) => { e.detail.headers["X-CSRF-Token"] = aiaas.csrf(); });
    document.body.addEventListener("htmx:afterSwap", (e) => drawCharts(e.target));
    document.body.addEventListener("click", (e) => {
      const b = e.target.closest("[data-copy]");
      if (!b) return;
      const src = document.getElementById(b.dataset.copy);
      if (src && navigator.clipboard) navigator.clipboard.writeText(src.textContent.trim()).then(() => { b.textContent = "Copied"; });
    });
  });
})();

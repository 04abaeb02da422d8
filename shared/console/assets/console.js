// Hookflow console: copy buttons and the request log's live tail. No
// framework: the pages are rendered by the server; this only adds what a
// page cannot do without script. Loaded from the console itself (the
// Content-Security-Policy allows no other script).
"use strict";

document.addEventListener("click", (ev) => {
  const button = ev.target.closest("button.copy");
  if (!button) return;
  navigator.clipboard.writeText(button.dataset.copy).then(
    () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1500); },
    () => { button.textContent = "Select and copy"; },
  );
});

// The live tail: the server pushes batches of new entries or requests
// (server-sent events) as rendered rows, newest first; the page keeps the
// newest 500.
const table = document.getElementById("log");
if (table && table.dataset.stream) {
  const rows = document.getElementById("log-rows");
  const status = document.getElementById("tail-status");
  const source = new EventSource(table.dataset.stream);
  // One row a request: a row the page shows is redrawn in its place (its
  // run went on), a new one goes on top; a published event whose row was
  // read before gets its deliveries' counts.
  source.addEventListener("requests", (ev) => {
    const batch = JSON.parse(ev.data);
    rows.querySelector("tr.empty")?.remove();
    let added = 0, changed = 0;
    for (const { key, html } of batch.rows.slice().reverse()) {
      const template = document.createElement("template");
      template.innerHTML = html;
      const row = template.content.querySelector("tr");
      if (!row) continue;
      row.classList.add("fresh");
      const shown = rows.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
      if (shown) { shown.replaceWith(row); changed += 1; } else { rows.prepend(row); added += 1; }
    }
    for (const { key, deliveries } of batch.cells) {
      const cell = rows.querySelector(`tr[data-key="${CSS.escape(key)}"] td.deliveries`);
      if (cell) { cell.textContent = deliveries; changed += 1; }
    }
    while (rows.rows.length > 500) rows.deleteRow(rows.rows.length - 1);
    status.textContent = `Live: ${added} new, ${changed} updated.`;
  });
  source.addEventListener("entries", (ev) => {
    const batch = JSON.parse(ev.data);
    rows.querySelector("tr.empty")?.remove();
    const template = document.createElement("template");
    template.innerHTML = batch.rows.join("");
    for (const row of template.content.querySelectorAll("tr")) row.classList.add("fresh");
    rows.prepend(template.content);
    while (rows.rows.length > 500) rows.deleteRow(rows.rows.length - 1);
    status.textContent = batch.more > 0
      ? `Live: ${batch.count} new entries (${batch.more} not shown: filter to see them).`
      : `Live: ${batch.count} new entries.`;
  });
  source.addEventListener("error", () => { status.textContent = "Live tail disconnected; reconnecting…"; });
}

// The overview's charts: uPlot (vendored, /console/assets/uPlot.*) draws
// each series the server counted, in the colour the server gave it by
// meaning (green delivered, amber retried, reds refused or dead); the data
// is the element's `data-chart`.
const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
const css = getComputedStyle(document.documentElement);
const fg = css.getPropertyValue("--fg").trim() || "#1b1f24";
const line = css.getPropertyValue("--line").trim() || "#d0d7de";
for (const el of document.querySelectorAll("[data-chart]")) {
  if (typeof uPlot === "undefined") break;
  const chart = JSON.parse(el.dataset.chart);
  const series = [{}].concat(chart.series.map(([label], i) => ({
    label, stroke: (chart.colours || [])[i] || PALETTE[i % PALETTE.length], width: 2, spanGaps: false,
    points: { show: true, size: 4 },
  })));
  const data = [chart.x].concat(chart.series.map(([, values]) => values));
  const opts = {
    width: Math.max(280, el.clientWidth || 480), height: 180, series,
    axes: [{ stroke: fg, grid: { stroke: line } }, { label: chart.unit, size: 60, stroke: fg, grid: { stroke: line } }],
    scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    legend: { live: false },
    // UTC, as every other time the console shows.
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
  };
  const plot = new uPlot(opts, data, el);
  new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height: 180 })).observe(el);
}

// A replay of every dead delivery of a filter: its progress, polled.
const replay = document.getElementById("replay-status");
if (replay && replay.dataset.state) {
  const bar = document.getElementById("replay-progress");
  const failure = document.getElementById("replay-failure");
  const poll = () => fetch(replay.dataset.state, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`status ${r.status}`))))
    .then((p) => {
      bar.max = Math.max(1, p.total);
      bar.value = p.replayed + p.gone;
      const gone = p.gone ? `, ${p.gone} replayed meanwhile elsewhere` : "";
      replay.textContent = `${p.replayed} of ${p.total} queued again${gone}${p.finished ? " — done" : ""}.`;
      if (p.failure) { failure.textContent = p.failure; failure.hidden = false; }
      if (!p.finished) setTimeout(poll, 300);
    })
    .catch(() => setTimeout(poll, 1000));
  poll();
}

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

// The live tail: the server pushes batches of new entries (server-sent
// events) as rendered rows, newest first; the page keeps the newest 500.
const table = document.getElementById("log");
if (table && table.dataset.stream) {
  const rows = document.getElementById("log-rows");
  const status = document.getElementById("tail-status");
  const source = new EventSource(table.dataset.stream);
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

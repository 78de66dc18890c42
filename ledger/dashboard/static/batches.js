// Batches page: the list polled from the API every few seconds, rows updated in place (so
// keyboard focus stays put), rate and ETA for unfinished batches, pause/resume/cancel.
"use strict";

(function () {
  const POLL_MS = 2000;
  const PAGE = 25;
  const MAX_PROGRESS_READS = 10; // rate/ETA reads per poll: bounded API load

  const $ = (id) => document.getElementById(id);
  const rows = new Map(); // batch id -> row elements
  let cursors = [null]; // cursor of each page visited; the last one is shown
  let nextCursor = null;
  let timer = null;
  let busy = false;
  let again = false; // a refresh was asked for while one was in flight

  // Every filter, complete included, is the API's: the page never filters what it was sent.
  function fetchPage() {
    return L.api("GET", url($("state-filter").value));
  }

  function url(state) {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (state) params.set("state", state);
    const cursor = cursors[cursors.length - 1];
    if (cursor) params.set("cursor", cursor);
    return "/api/v1/batches?" + params;
  }

  function makeRow(batch) {
    const href = "/batches/" + encodeURIComponent(batch.id);
    const r = {};
    r.link = L.el("a", { href });
    r.sub = L.el("div", { class: "muted small" });
    r.state = L.el("span", { class: "state" });
    r.reason = L.el("div", { class: "pause-reason small" });
    r.bar = L.el("div", { class: "progress" });
    r.figures = L.el("div", { class: "small" });
    r.rate = L.el("td", { "data-label": "Rate" });
    r.eta = L.el("td", { "data-label": "ETA" });
    r.pause = L.el("button", { type: "button", text: "Pause" });
    r.resume = L.el("button", { type: "button", text: "Resume" });
    r.cancel = L.el("button", { type: "button", class: "danger", text: "Cancel" });
    r.pause.addEventListener("click", () => control(batch.id, "pause"));
    r.resume.addEventListener("click", () => control(batch.id, "resume"));
    r.cancel.addEventListener("click", () => control(batch.id, "cancel"));
    r.tr = L.el(
      "tr",
      { "data-batch": batch.id },
      L.el("th", { scope: "row", "data-label": "Batch" }, r.link, r.sub),
      L.el("td", { "data-label": "State" }, r.state, r.reason),
      L.el("td", { "data-label": "Progress", class: "wide" }, r.bar, r.figures),
      r.rate,
      r.eta,
      L.el("td", { "data-label": "Actions" }, L.el("div", { class: "actions" }, r.pause, r.resume, r.cancel)),
    );
    return r;
  }

  function updateRow(r, batch) {
    const state = L.stateOf(batch);
    r.link.textContent = batch.name || batch.id;
    r.link.setAttribute("aria-label", "Batch " + (batch.name || batch.id));
    r.sub.textContent = (batch.name ? batch.id + " · " : "") + batch.processor + " · " + L.time(batch.created_at);
    r.state.textContent = state.label;
    r.state.className = "state state-" + state.key;
    r.reason.textContent = state.reason ? "Reason: " + state.reason : "";
    r.reason.hidden = !state.reason;
    L.progressBar(r.bar, batch);
    r.figures.textContent = !batch.total ? "no documents" :
      L.count(batch.finished) + " / " + L.count(batch.total) + " · " + r.bar.dataset.percent + "%" +
      (batch.counts.failed ? " · " + L.count(batch.counts.failed) + " failed" : "");
    const unfinished = !batch.complete && batch.state !== "cancelled";
    r.pause.hidden = !(batch.state === "active" && unfinished);
    r.resume.hidden = batch.state !== "paused";
    r.cancel.hidden = batch.state === "cancelled" || batch.complete;
    r.tr.classList.toggle("no-actions", r.pause.hidden && r.resume.hidden && r.cancel.hidden);
    if (!unfinished) {
      r.rate.textContent = "–";
      r.eta.textContent = batch.complete && batch.total ? "done" : "–";
    }
    r.batch = batch;
  }

  async function control(id, action) {
    if (action === "cancel" && !confirm("Cancel batch " + id + "? Its pending documents will be cancelled. This cannot be undone.")) {
      return;
    }
    try {
      await L.api("POST", "/api/v1/batches/" + encodeURIComponent(id) + "/" + action);
      L.clearError();
      L.notify("Batch " + id + ": " + { pause: "paused", resume: "resumed", cancel: "cancelled" }[action] + ".");
    } catch (error) {
      L.showError(error);
    }
    refresh();
  }

  async function progressOf(batches) {
    const wanted = batches
      .filter((b) => !b.complete && b.state !== "cancelled")
      .slice(0, MAX_PROGRESS_READS);
    await Promise.all(
      wanted.map(async (b) => {
        try {
          const p = await L.api("GET", "/api/v1/batches/" + encodeURIComponent(b.id));
          const r = rows.get(b.id);
          if (!r) return;
          updateRow(r, p.batch);
          r.rate.textContent = L.rate(L.rateOf(p));
          r.eta.textContent = p.batch.state === "paused" ? "paused" : L.duration(p.eta_seconds);
        } catch (_) {
          /* the list itself reports errors; a missing rate is shown as a dash */
        }
      }),
    );
  }

  async function refresh() {
    // A click while a read is in flight (a filter, the next page) is read right after it,
    // not dropped until the next poll.
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    again = false;
    clearTimeout(timer);
    try {
      const page = await fetchPage();
      L.clearError();
      nextCursor = page.next_cursor;
      const tbody = $("batches").tBodies[0];
      const seen = new Set();
      page.items.forEach((batch, i) => {
        seen.add(batch.id);
        let r = rows.get(batch.id);
        if (!r) {
          r = makeRow(batch);
          rows.set(batch.id, r);
        }
        updateRow(r, batch);
        if (tbody.children[i] !== r.tr) tbody.insertBefore(r.tr, tbody.children[i] || null);
      });
      for (const [id, r] of rows) {
        if (!seen.has(id)) {
          r.tr.remove();
          rows.delete(id);
        }
      }
      $("empty").hidden = page.items.length > 0 || Boolean($("state-filter").value);
      $("empty-filtered").hidden = page.items.length > 0 || !$("state-filter").value;
      $("batches").hidden = page.items.length === 0;
      $("older").hidden = !nextCursor;
      $("newer").hidden = cursors.length < 2;
      await progressOf(page.items);
      $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
    } catch (error) {
      L.showError(error);
    } finally {
      busy = false;
      if (again) refresh();
      else if (!document.hidden) timer = setTimeout(refresh, POLL_MS);
    }
  }

  L.ready.then(() => {
    $("state-filter").addEventListener("change", () => {
      cursors = [null];
      refresh();
    });
    $("older").addEventListener("click", () => {
      if (!nextCursor) return;
      cursors.push(nextCursor);
      refresh();
    });
    $("newer").addEventListener("click", () => {
      if (cursors.length > 1) cursors.pop();
      refresh();
    });
    // No polling in a hidden tab; catch up at once when it is shown again.
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
    refresh();
  });
})();

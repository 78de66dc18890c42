// Workers page: the operator's list of worker processes, polled from the API every few
// seconds. Their state (alive, lost, stopped) is derived by the server from heartbeats.
"use strict";

(function () {
  const POLL_MS = 2000;
  const $ = (id) => document.getElementById(id);
  const STATE_CLASS = { alive: "active", lost: "paused", stopped: "cancelled" };
  let timer = null;

  function row(w) {
    return L.el(
      "tr",
      { "data-worker": w.id },
      L.el(
        "th",
        { scope: "row", "data-label": "Worker" },
        L.el("div", { text: w.id }),
        L.el("div", { class: "muted small", text: "started " + L.time(w.started_at) + " · concurrency " + w.concurrency }),
      ),
      L.el("td", { "data-label": "State" }, L.el("span", { class: "state state-" + (STATE_CLASS[w.state] || ""), text: w.state })),
      L.el("td", { "data-label": "In flight", text: L.count(w.in_flight) }),
      L.el("td", { "data-label": "Finished", text: L.count(w.finished) }),
      L.el("td", { "data-label": "Last heartbeat", text: L.time(w.last_heartbeat_at) }),
      L.el("td", { "data-label": "Processors", class: "wide small", text: w.processors.join(", ") }),
    );
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const page = await L.api("GET", "/api/v1/workers?limit=100");
      $("workers").tBodies[0].replaceChildren(...page.items.map(row));
      $("workers").hidden = page.items.length === 0;
      $("empty").hidden = page.items.length > 0;
      $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
      L.clearError();
    } catch (error) {
      L.showError(error);
    } finally {
      if (!document.hidden) timer = setTimeout(refresh, POLL_MS);
    }
  }

  L.ready.then(() => {
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
    refresh();
  });
})();

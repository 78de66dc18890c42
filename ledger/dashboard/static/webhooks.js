// Webhooks page: the tenant's webhooks and each one's latest deliveries, polled from the API.
"use strict";

(function () {
  const POLL_MS = 5000;
  const DELIVERIES = 10;
  const $ = (id) => document.getElementById(id);

  function deliveryRow(d) {
    return L.el(
      "tr",
      { "data-event": d.event_id },
      L.el("td", { "data-label": "Event", text: d.event_type }),
      L.el("td", { "data-label": "Batch" }, d.batch_id
        ? L.el("a", { href: "/batches/" + encodeURIComponent(d.batch_id), text: d.batch_id })
        : "–"),
      L.el("td", { "data-label": "Status", class: "delivery-status", text: d.status }),
      L.el("td", { "data-label": "Attempts", text: String(d.attempts) }),
      L.el("td", { "data-label": "Last answer", text: d.last_status_code ? "HTTP " + d.last_status_code : d.last_error || "–" }),
      L.el("td", { "data-label": "When", text: L.time(d.finished_at || d.created_at) }),
    );
  }

  function section(hook, deliveries) {
    const table = L.el(
      "table",
      { class: "responsive" },
      L.el("caption", { class: "visually-hidden", text: "Deliveries of " + hook.url }),
      L.el(
        "thead",
        {},
        L.el("tr", {}, ...["Event", "Batch", "Status", "Attempts", "Last answer", "When"].map(
          (name) => L.el("th", { scope: "col", text: name }),
        )),
      ),
      L.el("tbody", {}, ...deliveries.map(deliveryRow)),
    );
    return L.el(
      "section",
      { class: "webhook", "data-webhook": hook.id },
      L.el("h2", { class: "source", text: hook.url }),
      L.el("p", {
        class: "muted small",
        text: hook.id + " · " + hook.events.join(", ") + " · failures above " + hook.failure_threshold,
      }),
      deliveries.length ? table : L.el("p", { class: "muted small", text: "Nothing delivered yet." }),
    );
  }

  async function refresh() {
    try {
      const hooks = (await L.api("GET", "/api/v1/webhooks")).items;
      const sections = [];
      for (const hook of hooks) {
        const path = "/api/v1/webhooks/" + encodeURIComponent(hook.id) + "/deliveries?limit=" + DELIVERIES;
        sections.push(section(hook, (await L.api("GET", path)).items));
      }
      L.clearError();
      $("webhooks").replaceChildren(...sections);
      $("no-webhooks").hidden = hooks.length > 0;
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (error) {
      L.showError(error);
    }
  }

  L.ready.then(() => {
    refresh();
    setInterval(refresh, POLL_MS);
  });
})();

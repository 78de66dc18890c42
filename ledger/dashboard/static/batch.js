// Batch page: live progress over the batch's event stream, the throughput chart, failures
// grouped by error code with retry buttons, and the documents with their attempts.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const root = $("batch");
  const batchId = root.dataset.batchId;
  const base = "/api/v1/batches/" + encodeURIComponent(batchId);
  const DOC_PAGE = 50;
  const REFRESH_MS = 1500; // lists are re-read at most this often while events arrive
  const CHART_MS = 60000; // without events (the bars are per minute; events redraw sooner)
  const CHART_LIVE_MS = 3000; // the chart is re-read at most this often while events arrive

  let current = null; // the last progress snapshot
  let events = null;
  let docCursors = [null];
  let docNext = null;
  const expanded = new Set(); // document ids whose attempts are shown
  let listTimer = null;
  let chartTimer = null;
  let chartLiveTimer = null;

  // ------------------------------------------------------------------ progress

  function render(progress) {
    current = progress;
    const b = progress.batch;
    const state = L.stateOf(b);
    $("batch-name").textContent = b.name || b.id;
    document.title = "Batch " + (b.name || b.id) + " · ledger";
    const badge = $("batch-state");
    badge.textContent = state.label;
    badge.className = "state state-" + state.key;
    $("batch-meta").textContent =
      (b.name ? "id " + b.id + " · " : "") + "processor " + b.processor + " · up to " +
      L.plural(b.max_attempts, "attempt") + " · created " + L.time(b.created_at) +
      (b.completed_at ? " · completed " + L.time(b.completed_at) : "");
    $("pause-reason").hidden = !state.reason;
    $("pause-reason").textContent = state.reason ? "Paused: " + state.reason : "";
    // Due work that no live worker can run: it waits (it never fails for that).
    $("waiting-note").hidden = !progress.waiting_for_processor;
    $("waiting-note").textContent = progress.waiting_for_processor ? progress.note : "";
    L.progressBar($("progress"), b);
    $("figure-finished").textContent = b.total
      ? L.count(b.finished) + " of " + L.count(b.total) + " finished (" + $("progress").dataset.percent + "%)"
      : "no documents";
    $("figure-rate").textContent = "rate " + L.rate(L.rateOf(progress));
    // A batch without documents has nothing to finish: no ETA, not "done".
    $("figure-eta").textContent =
      "ETA " + (!b.total ? "–" : b.state === "paused" ? "paused" : b.complete ? "done" : L.duration(progress.eta_seconds));
    renderSinks(progress.sinks || {});
    for (const cell of document.querySelectorAll("[data-count]")) {
      const name = cell.dataset.count;
      cell.textContent = L.count(name === "total" ? b.total : b.counts[name]);
    }
    const unfinished = !b.complete && b.state !== "cancelled";
    $("pause").hidden = !(b.state === "active" && unfinished);
    $("pause-reason-field").hidden = $("pause").hidden;
    $("resume").hidden = b.state !== "paused";
    $("cancel").hidden = b.state === "cancelled" || b.complete;
  }

  // The batch's sinks: progress apart from "complete" (a store may lag or be down). Once the
  // event stream has ended, the batch is re-read while a sink still has rows pending.
  let sinkTimer = null;
  function renderSinks(sinks) {
    const names = Object.keys(sinks);
    $("sinks").hidden = names.length === 0;
    $("sink-rows").replaceChildren(
      ...names.map((name) => {
        const s = sinks[name];
        return L.el(
          "tr",
          {},
          L.el("th", { scope: "row", text: name }),
          L.el("td", { "data-label": "done", text: L.count(s.done) }),
          L.el("td", { "data-label": "pending", text: L.count(s.pending) }),
          L.el("td", { "data-label": "failed", class: s.failed ? "error" : null, text: L.count(s.failed) }),
          L.el("td", { "data-label": "latest error", text: s.last_error || "" }),
        );
      }),
    );
    clearTimeout(sinkTimer);
    if (names.some((name) => sinks[name].pending > 0) && events && events.ended) {
      sinkTimer = setTimeout(load, 3000);
    }
  }

  async function load() {
    try {
      render(await L.api("GET", base));
      L.clearError();
      return true;
    } catch (error) {
      L.showError(error);
      return false;
    }
  }

  function follow() {
    events = L.stream(base + "/events", {
      open() {
        $("live-status").textContent = "Live: following this batch's events.";
      },
      progress(data) {
        render(data);
      },
      message(data, event) {
        // document_done, document_failed, document_retry, batch_paused ...
        if (event.type.startsWith("document_") || event.type.startsWith("batch_")) {
          soon();
          chartSoon();
        }
      },
      end() {
        $("live-status").textContent = "Finished: every document reached an end.";
        refreshLists();
        chart();
        load(); // and the sinks, which may still be writing

      },
      reconnecting() {
        $("live-status").textContent = "Connection lost; reconnecting…";
      },
      error(error, final) {
        if (final) L.showError(error);
      },
    });
  }

  // ------------------------------------------------------------------ controls

  async function act(action, data, message) {
    try {
      const answer = await L.api("POST", base + "/" + action, data);
      L.clearError();
      L.notify(message(answer));
    } catch (error) {
      L.showError(error);
    }
    await load();
    if (events) events.reopen();
    refreshLists();
    chart();
  }

  function pause() {
    const reason = $("pause-reason-input").value.trim();
    act("pause", reason ? { reason } : undefined, () => "Batch paused.");
  }

  function cancel() {
    if (!confirm("Cancel batch " + batchId + "? Its pending documents will be cancelled. This cannot be undone.")) return;
    act("cancel", undefined, () => "Batch cancelled.");
  }

  function retry(code) {
    act("retry", code ? { code } : undefined, (answer) =>
      L.plural(answer.retried, "document") + " put back to pending.",
    );
  }

  // ------------------------------------------------------------------ lists

  function soon() {
    if (listTimer) return;
    listTimer = setTimeout(() => {
      listTimer = null;
      refreshLists();
    }, REFRESH_MS);
  }

  // The chart follows the event stream, at most once per CHART_LIVE_MS.
  function chartSoon() {
    if (chartLiveTimer) return;
    chartLiveTimer = setTimeout(() => {
      chartLiveTimer = null;
      chart();
    }, CHART_LIVE_MS);
  }

  // Why a skipped document was skipped (the processor's reason, kept in its result).
  function skipReason(d) {
    return d.status === "skipped" && d.result && typeof d.result.reason === "string" ? d.result.reason : null;
  }

  function refreshLists() {
    failures();
    documents();
  }

  let failuresRequest = 0;

  async function failures() {
    const request = ++failuresRequest;
    let data;
    try {
      data = await L.api("GET", base + "/failures");
    } catch (error) {
      if (request === failuresRequest) L.showError(error);
      return;
    }
    if (request !== failuresRequest) return;
    const list = $("failures");
    list.replaceChildren(
      ...data.groups.map((g) =>
        L.el(
          "li",
          { class: "failure", "data-code": g.code },
          L.el(
            "div",
            { class: "failure-head" },
            L.el("code", { text: g.code }),
            L.el("span", { class: "count", text: L.plural(g.count, "document") }),
            L.el("button", {
              type: "button",
              text: "Retry these",
              "aria-label": "Retry the " + L.plural(g.count, "document") + " that failed with " + g.code,
              onclick: () => retry(g.code),
            }),
            L.el("button", {
              type: "button",
              class: "link",
              text: "Show them",
              onclick: () => {
                $("status-filter").value = "failed";
                docCursors = [null];
                documents(g.code);
                $("documents-title").scrollIntoView();
              },
            }),
          ),
          g.example_message ? L.el("p", { class: "message", text: g.example_message }) : null,
        ),
      ),
    );
    $("failures-empty").hidden = data.total > 0;
    $("retry-all").hidden = data.total === 0;
    $("retry-all").textContent = "Retry all failures (" + L.count(data.total) + ")";
  }

  let docCode = null;
  // Requests overlap (a live refresh in flight while the user turns the page); only the
  // newest one may draw, or a late answer for page one replaces page two.
  let docRequest = 0;

  async function documents(code) {
    if (code !== undefined) docCode = code;
    const request = ++docRequest;
    const params = new URLSearchParams({ limit: String(DOC_PAGE) });
    const status = $("status-filter").value;
    if (status) params.set("status", status);
    if (docCode && status === "failed") params.set("code", docCode);
    const cursor = docCursors[docCursors.length - 1];
    if (cursor) params.set("cursor", cursor);
    let page;
    try {
      page = await L.api("GET", base + "/documents?" + params);
    } catch (error) {
      if (request === docRequest) L.showError(error);
      return;
    }
    if (request !== docRequest) return;
    docNext = page.next_cursor;
    const tbody = $("documents").tBodies[0];
    const rows = [];
    for (const d of page.items) {
      const detailsId = "attempts-" + d.id;
      const open = expanded.has(d.id);
      // A member of an archive or email: its parent's name, "!/" and its path inside it.
      const parent = d.meta && d.meta.member_of;
      const name = d.member_path && parent
        ? ((parent.meta && parent.meta.filename) || parent.source) + "!/" + d.member_path
        : (d.meta && d.meta.filename) || d.source;
      const toggle = L.el("button", {
        type: "button",
        class: "link",
        text: open ? "Hide attempts" : "Attempts",
        "aria-expanded": open ? "true" : "false",
        "aria-controls": detailsId,
        "aria-label": (open ? "Hide attempts of " : "Show attempts of ") + name,
      });
      const row = L.el(
        "tr",
        { "data-document": String(d.id) },
        L.el("td", { "data-label": "Id" }, L.el("a", { href: "/documents/" + d.id, text: String(d.id), "aria-label": "Document " + d.id })),
        L.el("td", { "data-label": "Source", class: "source", title: d.source, text: name }),
        L.el("td", { "data-label": "Status" }, L.el("span", { class: "status status-" + d.status, text: d.status })),
        L.el("td", { "data-label": "Attempts", text: String(d.attempts) }),
        L.el(
          "td",
          { "data-label": "Error", class: "error" },
          ...L.errorBlock("document-" + d.id, d.error_code, d.error_message),
          skipReason(d) ? L.el("span", { class: "skip-reason muted", text: "Skipped: " + skipReason(d) }) : null,
        ),
        L.el("td", { "data-label": "Details" }, toggle),
      );
      const cell = L.el("td", { colspan: "6" });
      const details = L.el("tr", { id: detailsId, class: "attempts-row", hidden: !open }, cell);
      toggle.addEventListener("click", () => {
        const show = toggle.getAttribute("aria-expanded") !== "true";
        toggle.setAttribute("aria-expanded", show ? "true" : "false");
        toggle.textContent = show ? "Hide attempts" : "Attempts";
        toggle.setAttribute("aria-label", (show ? "Hide attempts of " : "Show attempts of ") + name);
        details.hidden = !show;
        if (show) {
          expanded.add(d.id);
          attempts(d.id, cell);
        } else {
          expanded.delete(d.id);
        }
      });
      if (open) attempts(d.id, cell);
      rows.push(row, details);
    }
    // Keep keyboard focus on the same control across a refresh.
    const focused = document.activeElement && tbody.contains(document.activeElement)
      ? document.activeElement.closest("tr").dataset.document
      : null;
    tbody.replaceChildren(...rows);
    if (focused) {
      const again = tbody.querySelector('tr[data-document="' + focused + '"] button');
      if (again) again.focus();
    }
    $("documents-empty").hidden = page.items.length > 0;
    $("docs-next").hidden = !docNext;
    $("docs-first").hidden = docCursors.length < 2;
  }

  async function attempts(documentId, cell) {
    let data;
    try {
      data = await L.api("GET", "/api/v1/documents/" + documentId);
    } catch (error) {
      cell.replaceChildren(L.el("p", { class: "error", text: L.describe(error) }));
      return;
    }
    if (!data.attempts.length) {
      cell.replaceChildren(L.el("p", { class: "muted", text: "No attempt yet." }));
      return;
    }
    const head = ["#", "Outcome", "Worker", "Started", "Duration", "Error"];
    cell.replaceChildren(
      L.el(
        "table",
        { class: "attempts" },
        L.el("caption", { class: "visually-hidden", text: "Attempts at document " + documentId }),
        L.el("thead", {}, L.el("tr", {}, ...head.map((h) => L.el("th", { scope: "col", text: h })))),
        L.el(
          "tbody",
          {},
          ...data.attempts.map((a, i) =>
            L.el(
              "tr",
              {},
              L.el("td", { text: String(i + 1) }),
              L.el("td", {}, L.el("span", { class: "status status-" + a.outcome, text: a.outcome })),
              L.el("td", { class: "small", text: a.worker_id || "–" }),
              L.el("td", { text: L.time(a.started_at) }),
              L.el("td", { text: a.duration_seconds.toFixed(3) + " s" }),
              L.el("td", { class: "error" }, ...L.errorBlock("attempt-" + a.id, a.error_code, a.error_message)),
            ),
          ),
        ),
      ),
    );
  }

  // ------------------------------------------------------------------ chart

  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function minuteLabel(iso) {
    return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }

  let lastChart = null;

  function draw(data) {
    lastChart = data;
    // Drawn at the container's pixel width, so labels keep their size on any screen.
    const W = Math.max(280, Math.round($("chart").clientWidth || 720));
    const H = 200, left = 48, bottom = 22, top = 10, right = 8;
    const points = data.minutes;
    const peak = Math.max(...points.map((m) => m.per_second), 0);
    const scale = peak > 0 ? niceCeiling(peak) : 1;
    const plotW = W - left - right, plotH = H - top - bottom;
    const bw = plotW / points.length;
    const latest = points[points.length - 1];
    const chart = svg("svg", {
      viewBox: "0 0 " + W + " " + H,
      role: "img",
      class: "chart-svg",
      "aria-label":
        "Throughput per minute, " + minuteLabel(points[0].minute) + " to " + minuteLabel(latest.minute) +
        ": peak " + L.rate(peak) + ", latest minute " + L.rate(latest.per_second) + ".",
    });
    for (const f of [0, 0.5, 1]) {
      const y = top + plotH * (1 - f);
      chart.append(svg("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid" }));
      chart.append(svg("text", { x: left - 4, y: y + 4, class: "axis", "text-anchor": "end" }, axis(scale, f)));
    }
    points.forEach((m, i) => {
      const finished = m.done + m.failed + m.skipped;
      if (!finished) return;
      const x = left + i * bw + Math.min(1, bw * 0.1);
      const w = Math.max(1, bw - Math.min(2, bw * 0.2));
      let y = top + plotH;
      for (const [part, cls] of [[m.done + m.skipped, "bar-done"], [m.failed, "bar-failed"]]) {
        if (!part) continue;
        const h = (part / 60 / scale) * plotH;
        y -= h;
        const rect = svg("rect", { x, y, width: w, height: h, class: cls });
        rect.append(
          svg("title", {},
            minuteLabel(m.minute) + ": " + L.rate(m.per_second) + " (" + m.done + " done, " +
            m.failed + " failed, " + m.skipped + " skipped, " + m.retried + " retried)"),
        );
        chart.append(rect);
      }
    });
    chart.append(svg("text", { x: left, y: H - 6, class: "axis" }, minuteLabel(points[0].minute)));
    chart.append(svg("text", { x: W - right, y: H - 6, class: "axis", "text-anchor": "end" }, minuteLabel(latest.minute)));
    $("chart").replaceChildren(chart);
    $("chart-caption").textContent =
      "Documents finished per second, per minute (green: done or skipped, red: failed)" +
      (data.truncated ? "; only the most recent attempts were read, the oldest minutes undercount." : ".");
  }

  // One unit along the whole axis: per minute below one document a second.
  function axis(scale, fraction) {
    const value = scale * fraction;
    if (scale < 1) {
      const perMinute = value * 60;
      return (perMinute < 10 && perMinute % 1 ? perMinute.toFixed(1) : perMinute.toFixed(0)) + "/min";
    }
    return (value < 10 && value % 1 ? value.toFixed(1) : value.toFixed(0)) + "/s";
  }

  function niceCeiling(value) {
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
    return 10 * power;
  }

  let chartRequest = 0;

  async function chart() {
    clearTimeout(chartTimer);
    const request = ++chartRequest; // a late answer for another window must not be drawn
    try {
      const points = await L.api("GET", base + "/throughput?minutes=" + $("chart-window").value);
      if (request !== chartRequest) return;
      draw(points);
    } catch (error) {
      if (request !== chartRequest) return;
      $("chart").replaceChildren(L.el("p", { class: "error", text: L.describe(error) }));
    }
    if (!(events && events.ended)) chartTimer = setTimeout(chart, CHART_MS);
  }

  // ------------------------------------------------------------------ start

  L.ready.then(async () => {
    $("pause").addEventListener("click", pause);
    $("resume").addEventListener("click", () => act("resume", undefined, () => "Batch resumed."));
    $("cancel").addEventListener("click", cancel);
    $("control").addEventListener("submit", (event) => {
      event.preventDefault();
      pause();
    });
    $("retry-all").addEventListener("click", () => retry(null));
    $("status-filter").addEventListener("change", () => {
      docCursors = [null];
      docCode = null;
      documents();
    });
    $("docs-next").addEventListener("click", () => {
      if (!docNext) return;
      docCursors.push(docNext);
      documents();
    });
    $("docs-first").addEventListener("click", () => {
      docCursors = [null];
      documents();
    });
    $("chart-window").addEventListener("change", chart);
    // The settings form's saved batch, drawn at once rather than at the next event.
    root.addEventListener("ledger:batch", (event) => render(event.detail));
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => lastChart && draw(lastChart), 150);
    });
    if (!(await load())) return;
    follow();
    refreshLists();
    chart();
  });
})();

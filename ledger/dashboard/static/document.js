// Document page: one document's facts, every attempt at it with its error, and its result.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const documentId = $("document").dataset.documentId;

  function fact(name, value) {
    return value === null || value === undefined || value === ""
      ? null
      : L.el("div", {}, L.el("dt", { text: name }), L.el("dd", { text: String(value) }));
  }

  // A child document links to the archive or email it was extracted from.
  function parentFact(d) {
    if (d.parent_id === null || d.parent_id === undefined) return null;
    const link = L.el("a", { id: "document-parent", href: "/documents/" + encodeURIComponent(d.parent_id), text: "document " + d.parent_id });
    return L.el("div", {}, L.el("dt", { text: "Member of" }), L.el("dd", {}, link));
  }

  function render(data) {
    const d = data.document;
    // A member of an archive or email is named by its path inside it (its file is ours).
    const name = d.member_path || (d.meta && d.meta.filename) || d.source.split("/").pop() || d.source;
    document.title = "Document " + d.id + " · ledger";
    $("document-name").textContent = name;
    $("document-status").textContent = d.status;
    $("document-status").className = "status status-" + d.status;
    const batch = $("document-batch");
    batch.textContent = d.batch_id;
    batch.href = "/batches/" + encodeURIComponent(d.batch_id);
    const reason = d.status === "skipped" && d.result && typeof d.result.reason === "string" ? d.result.reason : null;
    $("document-facts").replaceChildren(
      ...[
        fact("Id", d.id),
        fact("Source", d.source),
        parentFact(d),
        fact("Member path", d.member_path),
        fact("Skipped because", reason),
        fact("Size", d.size === null ? null : L.count(d.size) + " bytes"),
        fact("SHA-256", d.sha256),
        fact("Attempts", d.attempts),
        fact("Created", L.time(d.created_at)),
        fact("Started", d.started_at && L.time(d.started_at)),
        fact("Finished", d.finished_at && L.time(d.finished_at)),
      ].filter(Boolean),
    );
    $("document-error").replaceChildren(
      ...(d.error_code || d.error_message ? L.errorBlock("document", d.error_code, d.error_message) : []),
    );
    $("document-attempts-empty").hidden = data.attempts.length > 0;
    $("document-attempts").hidden = data.attempts.length === 0;
    $("document-attempts").tBodies[0].replaceChildren(
      ...data.attempts.map((a, i) =>
        L.el(
          "tr",
          { "data-attempt": String(a.id) },
          L.el("td", { "data-label": "#", text: String(i + 1) }), // oldest first, across retries
          L.el("td", { "data-label": "Outcome" }, L.el("span", { class: "status status-" + a.outcome, text: a.outcome })),
          L.el("td", { "data-label": "Worker", class: "small", text: a.worker_id || "–" }),
          L.el("td", { "data-label": "Started", text: L.time(a.started_at) }),
          L.el("td", { "data-label": "Duration", text: a.duration_seconds.toFixed(3) + " s" }),
          L.el("td", { "data-label": "Error", class: "error" }, ...L.errorBlock("attempt-" + a.id, a.error_code, a.error_message)),
        ),
      ),
    );
    $("document-result").textContent = d.result === null ? "No result yet." : JSON.stringify(d.result, null, 2);
  }

  // Its chunks, in order, a page at a time: where each one is (page, characters) and its text.
  const CHUNK_PAGE = 50;
  let chunksPath = null;
  let nextAfter = -1;

  function chunkItem(c) {
    const where = [
      "#" + c.ordinal,
      c.page === null ? null : "page " + c.page,
      "characters " + L.count(c.char_start) + "–" + L.count(c.char_end),
    ].filter(Boolean);
    return L.el(
      "li",
      { "data-chunk": String(c.chunk_id), "data-ordinal": String(c.ordinal) },
      L.el("div", { class: "chunk-where muted small", text: where.join(" · ") }),
      L.el("pre", { class: "chunk-text", text: c.text }),
    );
  }

  async function moreChunks() {
    const more = $("document-chunks-more");
    more.disabled = true;
    try {
      const page = await L.api("GET", chunksPath + "?limit=" + CHUNK_PAGE + "&after=" + nextAfter);
      $("document-chunks").append(...page.items.map(chunkItem));
      $("document-chunks-empty").hidden = $("document-chunks").children.length > 0;
      nextAfter = page.next_after;
      more.hidden = nextAfter === null;
      L.clearError();
    } catch (error) {
      L.showError(error);
    } finally {
      more.disabled = false;
    }
  }

  $("document-chunks-more").addEventListener("click", moreChunks);

  L.ready.then(async () => {
    try {
      const data = await L.api("GET", "/api/v1/documents/" + encodeURIComponent(documentId));
      render(data);
      chunksPath =
        "/api/v1/batches/" + encodeURIComponent(data.document.batch_id) +
        "/documents/" + encodeURIComponent(documentId) + "/chunks";
      await moreChunks();
      L.clearError();
    } catch (error) {
      L.showError(error);
    }
  });
})();

// Search page: ranked chunks from GET /api/v1/search, with their source and page.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  // The API marks matches in a snippet between « and »: shown as <mark>, never as HTML.
  function snippet(text) {
    const node = L.el("p", { class: "snippet" });
    const parts = String(text || "").split(/[«»]/);
    parts.forEach((part, i) => {
      if (!part) return;
      node.append(i % 2 ? L.el("mark", { text: part }) : document.createTextNode(part));
    });
    return node;
  }

  function hit(h, rank) {
    const where = [];
    if (h.page !== null && h.page !== undefined) where.push("page " + h.page);
    if (typeof h.char_start === "number") where.push("chars " + h.char_start + "–" + h.char_end);
    if (h.batch_id) where.push("batch " + h.batch_id);
    if (typeof h.score === "number") where.push("score " + h.score.toFixed(3));
    return L.el(
      "li",
      { class: "hit" },
      L.el(
        "div",
        { class: "hit-head" },
        L.el("span", { class: "rank", text: "#" + rank }),
        L.el("span", { class: "source", text: h.source_name || h.source || "(unknown source)" }),
        L.el("span", { class: "muted small", text: where.join(" · ") }),
      ),
      snippet(h.snippet || h.text),
      h.document_id
        ? L.el("a", { class: "small document", href: "/documents/" + encodeURIComponent(h.document_id), text: "Open its document" })
        : null,
      h.batch_id
        ? L.el("a", { class: "small", href: "/batches/" + encodeURIComponent(h.batch_id), text: "Open its batch" })
        : null,
    );
  }

  // Only the newest search may draw: an older one answering late would show the wrong hits.
  let latest = 0;

  async function run(q, k) {
    const request = ++latest;
    $("search-summary").textContent = "Searching…";
    $("hits").replaceChildren();
    try {
      const params = new URLSearchParams({ q, k });
      const data = await L.api("GET", "/api/v1/search?" + params);
      if (request !== latest) return;
      L.clearError();
      $("hits").replaceChildren(...data.hits.map((h, i) => hit(h, i + 1)));
      $("search-summary").textContent = data.hits.length
        ? data.hits.length + " result" + (data.hits.length === 1 ? "" : "s") + " for “" + q + "”."
        : "Nothing matches “" + q + "”.";
    } catch (error) {
      if (request !== latest) return;
      $("search-summary").textContent = "";
      L.showError(error);
    }
  }

  L.ready.then(() => {
    const params = new URLSearchParams(location.search);
    if (params.get("q")) {
      $("q").value = params.get("q");
      if (params.get("k")) $("k").value = params.get("k");
      run($("q").value, $("k").value);
    }
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const q = $("q").value.trim();
      if (!q) return;
      history.replaceState(null, "", "/search?" + new URLSearchParams({ q, k: $("k").value }));
      run(q, $("k").value);
    });
    $("q").focus();
  });
})();

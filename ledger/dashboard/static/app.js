// The dashboard's shared script: API calls with the caller's key, errors in words, a
// Server-Sent Events reader that can send headers, and small formatting helpers.
// Every page script waits for L.ready(), which resolves once the API can be called.
"use strict";

(function () {
  const KEY = "ledger.apiKey";
  const body = document.body;
  const authRequired = body.dataset.authRequired === "true";
  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, detail, title) {
      super(detail || title || "HTTP " + status);
      this.status = status;
      this.detail = detail;
      this.title = title;
    }
  }

  // ------------------------------------------------------------------ key

  function key() {
    try {
      return sessionStorage.getItem(KEY);
    } catch (_) {
      return null;
    }
  }

  // X-Requested-With marks the page's own requests: the server refuses uploads that another
  // site's page could have sent (cross-site request forgery) unless they carry it.
  function authHeaders() {
    const k = key();
    const headers = { "X-Requested-With": "fetch" };
    if (k) headers.Authorization = "Bearer " + k;
    return headers;
  }

  function showKeyStatus() {
    $("key-status").hidden = !(authRequired && key());
  }

  function askForKey(message) {
    try {
      sessionStorage.removeItem(KEY);
    } catch (_) {
      /* storage unavailable: nothing to clear */
    }
    showKeyStatus();
    $("content").hidden = true;
    $("key-panel").hidden = false;
    if (message) showError(message);
    $("key-input").focus();
  }

  // ------------------------------------------------------------------ messages

  function showError(error) {
    const box = $("alert");
    box.textContent = typeof error === "string" ? error : describe(error);
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }

  function clearError() {
    const box = $("alert");
    box.hidden = true;
    box.textContent = "";
  }

  function notify(message) {
    // A polite live region: screen readers announce it, others see it briefly.
    const box = $("notice");
    box.textContent = message;
    clearTimeout(notify.timer);
    notify.timer = setTimeout(() => {
      box.textContent = "";
    }, 6000);
  }

  function describe(error) {
    if (error instanceof ApiError) {
      return error.detail || error.title || "The server answered " + error.status + ".";
    }
    if (error instanceof TypeError) {
      return "Cannot reach the ledger server: " + error.message;
    }
    return String((error && error.message) || error);
  }

  // ------------------------------------------------------------------ API

  async function problem(response) {
    let detail = null;
    let title = null;
    try {
      const data = await response.json();
      detail = data.detail || null;
      title = data.title || null;
    } catch (_) {
      title = response.statusText;
    }
    return new ApiError(response.status, detail, title);
  }

  async function api(method, path, data) {
    const headers = { Accept: "application/json", ...authHeaders() };
    const init = { method, headers, cache: "no-store" };
    if (data !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(data);
    }
    const response = await fetch(path, init);
    if (!response.ok) {
      const error = await problem(response);
      if (response.status === 401 && authRequired) askForKey(describe(error));
      throw error;
    }
    return response.status === 204 ? null : response.json();
  }

  // Server-Sent Events over fetch: EventSource cannot send an Authorization header.
  // Reconnects after a dropped connection with Last-Event-ID, so no event is missed or
  // repeated; stops for good on the `end` event or on an answer that will not change
  // (4xx other than 429).
  function stream(path, on) {
    let lastId = null;
    let stopped = false;
    let ended = false;
    let controller = null;
    let timer = null;
    let retryMs = 2000;

    function dispatch(event) {
      if (event.id !== null) lastId = event.id;
      if (event.data.length === 0 && event.type === "message") return;
      let data = null;
      const text = event.data.join("\n");
      if (text) {
        try {
          data = JSON.parse(text);
        } catch (_) {
          data = text;
        }
      }
      if (event.type === "end") ended = true;
      const handler = on[event.type] || on.message;
      if (handler) handler(data, event);
    }

    async function connect() {
      if (stopped) return;
      controller = new AbortController();
      const headers = { Accept: "text/event-stream", ...authHeaders() };
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      try {
        const response = await fetch(path, {
          headers,
          signal: controller.signal,
          cache: "no-store",
        });
        if (!response.ok) throw await problem(response);
        if (on.open) on.open();
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        let event = { type: "message", data: [], id: null };
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          for (;;) {
            const at = buffer.search(/[\r\n]/);
            if (at < 0) break;
            if (buffer[at] === "\r" && at === buffer.length - 1) break; // maybe \r\n split
            const line = buffer.slice(0, at);
            buffer = buffer.slice(at + (buffer[at] === "\r" && buffer[at + 1] === "\n" ? 2 : 1));
            if (line === "") {
              dispatch(event);
              event = { type: "message", data: [], id: null };
              if (ended) break;
              continue;
            }
            if (line[0] === ":") continue;
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            let value = colon < 0 ? "" : line.slice(colon + 1);
            if (value[0] === " ") value = value.slice(1);
            if (field === "data") event.data.push(value);
            else if (field === "event") event.type = value;
            else if (field === "id") event.id = value;
            else if (field === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
          }
          if (ended) {
            controller.abort();
            break;
          }
        }
      } catch (error) {
        if (stopped || (error && error.name === "AbortError" && ended)) return;
        if (error instanceof ApiError && error.status < 500 && error.status !== 429) {
          stopped = true;
          if (error.status === 401 && authRequired) askForKey(describe(error));
          if (on.error) on.error(error, true);
          return;
        }
        if (on.error) on.error(error, false);
      }
      if (!stopped && !ended) {
        if (on.reconnecting) on.reconnecting();
        timer = setTimeout(connect, retryMs);
      }
    }

    connect();
    return {
      close() {
        stopped = true;
        clearTimeout(timer);
        if (controller) controller.abort();
      },
      // Follow the batch again after it ended (retry, resume): continues after lastId.
      reopen() {
        if (!ended || stopped) return;
        ended = false;
        connect();
      },
      get ended() {
        return ended;
      },
    };
  }

  // ------------------------------------------------------------------ formatting

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function count(n) {
    return Number(n || 0).toLocaleString("en");
  }

  // "1 attempt", "3 attempts": the noun agrees with its count.
  function plural(n, singular, pluralForm) {
    const noun = Number(n) === 1 ? singular : pluralForm || singular + "s";
    return count(n) + " " + noun;
  }

  // A progress snapshot's rate, under its agreed name or the older one.
  function rateOf(progress) {
    return progress.rate_per_second !== undefined ? progress.rate_per_second : progress.rate;
  }

  function rate(perSecond) {
    if (perSecond === null || perSecond === undefined) return "–";
    if (perSecond === 0) return "0/s";
    if (perSecond < 0.1) return (perSecond * 60).toFixed(1) + "/min";
    return (perSecond < 10 ? perSecond.toFixed(2) : perSecond.toFixed(0)) + "/s";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.round(seconds);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }

  function time(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  }

  // What a batch is doing, in one word (and the pause reason when paused).
  function stateOf(batch) {
    if (batch.state === "cancelled") return { key: "cancelled", label: "cancelled" };
    if (batch.state === "paused") {
      return {
        key: "paused",
        label: "paused",
        reason: batch.pause_reason || "no reason given",
      };
    }
    // The API's status word: a batch with nothing left to do is complete, an empty one included.
    if (batch.status === "complete") return { key: "complete", label: "complete" };
    return { key: "active", label: "active" };
  }

  // An error as a code and its message; a traceback (or any long message) folds into a
  // collapsible, preformatted block that wraps instead of widening the table.
  // `key` names the block across the list's live refreshes, so an opened one stays open.
  const SHORT_ERROR = 160; // longer (or multi-line) errors fold into a <details>
  const openTraces = new Set(); // keys of the folded errors the reader opened

  function errorBlock(key, code, message) {
    const codeNode = code ? el("code", { text: code }) : null;
    if (!message) return [codeNode];
    if (message.length <= SHORT_ERROR && !message.includes("\n")) {
      return [codeNode, el("span", { text: " " + message })];
    }
    const first = message.split("\n", 1)[0];
    const summary = first.length > SHORT_ERROR ? first.slice(0, SHORT_ERROR) + "…" : first;
    const details = el(
      "details",
      { class: "trace", open: openTraces.has(key) },
      el("summary", {}, codeNode, el("span", { text: " " + summary })),
      el("pre", { text: message }),
    );
    details.addEventListener("toggle", () => {
      if (details.open) openTraces.add(key);
      else openTraces.delete(key);
    });
    return [details];
  }

  const SEGMENTS = ["done", "failed", "skipped", "cancelled", "running"];

  // Fills `node` with a segmented progress bar; updates in place on later calls.
  function progressBar(node, batch) {
    const total = batch.total || 0;
    const c = batch.counts || {};
    node.classList.add("progress");
    node.setAttribute("role", "progressbar");
    node.setAttribute("aria-valuemin", "0");
    node.setAttribute("aria-valuemax", "100");
    const finished = batch.finished || 0;
    const percent = total ? Math.floor((finished / total) * 1000) / 10 : 0;
    node.setAttribute("aria-valuenow", String(percent));
    const parts = SEGMENTS.filter((s) => c[s]).map((s) => count(c[s]) + " " + s);
    if (c.pending) parts.push(count(c.pending) + " pending");
    node.setAttribute(
      "aria-valuetext",
      percent + "% finished (" + (parts.join(", ") || "no documents") + ")",
    );
    node.dataset.percent = String(percent);
    node.title = node.getAttribute("aria-valuetext");
    if (!node.firstChild) {
      for (const s of SEGMENTS) node.append(el("span", { class: "seg seg-" + s }));
    }
    SEGMENTS.forEach((s, i) => {
      node.children[i].style.width = total ? ((c[s] || 0) / total) * 100 + "%" : "0";
    });
  }

  // ------------------------------------------------------------------ start

  let readyResolve;
  const ready = new Promise((resolve) => {
    readyResolve = resolve;
  });

  function start() {
    $("forget-key").addEventListener("click", () => {
      askForKey(null);
      notify("The API key was forgotten in this tab.");
    });
    $("key-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = $("key-input").value.trim();
      if (!value) return;
      sessionStorage.setItem(KEY, value);
      try {
        await api("GET", "/api/v1/batches?limit=1");
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 401)) showError(error);
        return;
      }
      // A fresh start with the key: each page script begins from a clean state.
      location.reload();
    });
    showKeyStatus();
    if (authRequired && !key()) {
      askForKey(null);
      return;
    }
    $("content").hidden = false;
    readyResolve();
  }

  window.L = {
    ApiError,
    api,
    stream,
    ready,
    key,
    authHeaders,
    showError,
    clearError,
    notify,
    describe,
    el,
    count,
    plural,
    rate,
    rateOf,
    duration,
    time,
    stateOf,
    progressBar,
    errorBlock,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

// New batch page: resumable uploads with tus-js-client (drag and drop of files and folders,
// per-file progress, automatic retries, resume after a reload) and a form for server paths.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const PARALLEL = 3;
  const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000];
  const PREFIX = "ledger/"; // our fingerprints, among whatever else the browser stored

  let chosen = []; // {file, path, row}
  let uploading = false;

  // ------------------------------------------------------------------ batch settings

  function options() {
    const text = $("options").value.trim();
    if (!text) return {};
    let value;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new Error("Processor options are not valid JSON: " + error.message);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new Error("Processor options must be a JSON object, like {\"seconds\": 0.1}.");
    }
    return value;
  }

  // An example of each built-in processor's options; others get an empty object.
  const OPTION_EXAMPLES = {
    ingest: '{"chunk_size": 1000}',
    sleep: '{"seconds": 0.1}',
    noop: "{}",
  };

  // The options each processor declares (GET /api/v1/processors): name -> {option: spec}.
  let declared = {};

  function describeOption(name, spec) {
    const types = Array.isArray(spec.type) ? spec.type.join(" or ") : spec.type;
    const facts = [types];
    if (spec.required) facts.push("required");
    if (spec.minimum !== undefined || spec.maximum !== undefined) {
      facts.push((spec.minimum ?? "…") + " to " + (spec.maximum ?? "…"));
    }
    if (spec.enum) facts.push("one of " + spec.enum.join(", "));
    if (spec.default !== undefined) facts.push("default " + JSON.stringify(spec.default));
    return L.el(
      "li",
      { "data-option": name },
      L.el("code", { text: name }),
      " (" + facts.join("; ") + ")" + (spec.description ? ": " + spec.description : ""),
    );
  }

  function showOptionsExample() {
    const processor = $("processor").value.trim() || "ingest";
    const specs = declared[processor];
    const list = $("options-declared");
    if (specs) {
      const example = {};
      for (const [name, spec] of Object.entries(specs)) {
        if (spec.required || spec.default !== undefined) example[name] = spec.default ?? (spec.minimum ?? "");
      }
      $("options").placeholder = OPTION_EXAMPLES[processor] || JSON.stringify(example);
      list.replaceChildren(
        ...(Object.keys(specs).length
          ? Object.entries(specs).map(([name, spec]) => describeOption(name, spec))
          : [L.el("li", { text: processor + " takes no options." })]),
      );
      list.hidden = false;
    } else {
      $("options").placeholder = OPTION_EXAMPLES[processor] || "{}";
      list.replaceChildren();
      list.hidden = true;
    }
  }

  async function loadDeclaredOptions() {
    try {
      const answer = await L.api("GET", "/api/v1/processors");
      declared = Object.fromEntries(
        answer.items.filter((p) => p.options !== null).map((p) => [p.name, p.options]),
      );
      showOptionsExample();
    } catch (error) {
      L.showError(error);
    }
  }

  // A whole number from a field, or undefined when it is empty (the server's default).
  function whole(id, label, low, high) {
    const text = $(id).value.trim();
    if (!text) return undefined;
    const value = Number(text);
    if (!Number.isInteger(value) || value < low || value > high) {
      throw new Error(label + " must be a whole number from " + low + " to " + high + ".");
    }
    return value;
  }

  function batchBody() {
    const body = { processor: $("processor").value.trim() || "ingest", options: options() };
    const priority = whole("priority", "Priority", -1000000, 1000000);
    const maxAttempts = whole("max-attempts", "Max attempts", 1, 1000);
    if (priority !== undefined) body.priority = priority;
    if (maxAttempts !== undefined) body.max_attempts = maxAttempts;
    const id = $("batch-id").value.trim();
    const name = $("batch-name").value.trim();
    if (id) body.id = id;
    if (name) body.name = name;
    return body;
  }

  function batchLink(id, text) {
    return L.el("a", { href: "/batches/" + encodeURIComponent(id), text: text || id });
  }

  // ------------------------------------------------------------------ server paths

  async function submitPaths(event) {
    event.preventDefault();
    L.clearError();
    let body;
    try {
      body = batchBody();
    } catch (error) {
      L.showError(error);
      return;
    }
    body.paths = $("paths").value.split(/\r?\n/).map((p) => p.trim()).filter(Boolean);
    const glob = $("glob").value.trim();
    if (glob) body.glob = glob;
    const button = $("paths-submit");
    button.disabled = true;
    button.textContent = "Creating…";
    try {
      const batch = await L.api("POST", "/api/v1/batches", body);
      location.assign("/batches/" + encodeURIComponent(batch.id));
    } catch (error) {
      L.showError(error);
      button.disabled = false;
      button.textContent = "Create batch";
    }
  }

  // ------------------------------------------------------------------ choosing files

  function readAll(reader) {
    // readEntries returns a directory's entries a slice at a time, until an empty slice.
    return new Promise((resolve, reject) => {
      const all = [];
      const next = () =>
        reader.readEntries((entries) => {
          if (!entries.length) resolve(all);
          else {
            all.push(...entries);
            next();
          }
        }, reject);
      next();
    });
  }

  async function walk(entry, out) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      out.push({ file, path: entry.fullPath.replace(/^\//, "") });
    } else if (entry.isDirectory) {
      for (const child of await readAll(entry.createReader())) await walk(child, out);
    }
  }

  async function fromDrop(dataTransfer) {
    const out = [];
    const items = [...(dataTransfer.items || [])].filter((i) => i.kind === "file");
    const entries = items.map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
    if (entries.length && entries.every(Boolean)) {
      for (const entry of entries) await walk(entry, out);
    } else {
      for (const file of dataTransfer.files) out.push({ file, path: file.name });
    }
    return out;
  }

  function fmtSize(bytes) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (bytes >= 1024 && i < units.length - 1) {
      bytes /= 1024;
      i += 1;
    }
    return (i ? bytes.toFixed(1) : String(bytes)) + " " + units[i];
  }

  function add(items) {
    if (uploading) return;
    const known = new Set(chosen.map((c) => c.path + "\0" + c.file.size));
    for (const item of items) {
      const k = item.path + "\0" + item.file.size;
      if (known.has(k)) continue;
      known.add(k);
      const bar = L.el("progress", { max: "100", value: "0", "aria-label": "Upload of " + item.path });
      const status = L.el("span", { class: "upload-status", text: "ready" });
      const li = L.el(
        "li",
        { class: "upload", "data-path": item.path },
        L.el("span", { class: "upload-name", text: item.path }),
        L.el("span", { class: "muted small", text: fmtSize(item.file.size) }),
        bar,
        status,
      );
      $("uploads").append(li);
      chosen.push({ ...item, bar, status, li });
    }
    updateSelection();
  }

  function updateSelection() {
    const total = chosen.reduce((n, c) => n + c.file.size, 0);
    $("selection").textContent = chosen.length
      ? chosen.length + " file" + (chosen.length === 1 ? "" : "s") + " chosen (" + fmtSize(total) + ")."
      : "No files chosen.";
    $("upload-start").disabled = uploading || chosen.length === 0;
    $("upload-clear").disabled = uploading || chosen.length === 0;
  }

  // ------------------------------------------------------------------ uploading

  function fingerprint(batchId) {
    return (file, opts) => {
      const path = (opts.metadata && opts.metadata.filename) || file.name;
      return Promise.resolve(
        PREFIX + [batchId, path, file.size, file.lastModified, opts.endpoint].join("/"),
      );
    };
  }

  function tusError(error) {
    const response = error && error.originalResponse;
    if (response) {
      try {
        const body = JSON.parse(response.getBody() || "{}");
        if (body.detail) return body.detail;
      } catch (_) {
        /* not problem+json: fall through to the status */
      }
      return "the server answered " + response.getStatus();
    }
    return (error && error.message) || String(error);
  }

  function setStatus(c, text, kind) {
    c.status.textContent = text;
    c.li.dataset.state = kind || "";
  }

  function uploadOne(c, batch, processor) {
    return new Promise((resolve) => {
      const upload = new tus.Upload(c.file, {
        endpoint: location.origin + "/api/v1/uploads",
        chunkSize: Number($("new").dataset.chunkBytes),
        retryDelays: RETRY_DELAYS,
        headers: L.authHeaders(),
        metadata: { batch, filename: c.path, processor, filetype: c.file.type || "" },
        fingerprint: fingerprint(batch),
        storeFingerprintForResuming: true,
        removeFingerprintOnSuccess: true,
        onProgress(sent, total) {
          const pct = total ? Math.floor((sent / total) * 100) : 100;
          c.bar.value = pct;
          if (c.resuming && c.resumedFrom === undefined) c.resumedFrom = pct;
          setStatus(c, (c.resumedFrom !== undefined ? "resumed from " + c.resumedFrom + "%, " : "") + "uploading " + pct + "%", "uploading");
        },
        onShouldRetry(error) {
          const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
          const retry = (status < 400 || status >= 500 || status === 409 || status === 423) && navigator.onLine !== false;
          if (retry) setStatus(c, "connection problem, retrying…", "retrying");
          return retry;
        },
        onSuccess() {
          c.bar.value = 100;
          setStatus(c, "uploaded" + (c.resumedFrom !== undefined ? " (resumed from " + c.resumedFrom + "%)" : ""), "done");
          resolve(true);
        },
        onError(error) {
          setStatus(c, "failed: " + tusError(error), "failed");
          resolve(false);
        },
      });
      upload.findPreviousUploads().then(
        (previous) => {
          if (previous.length) {
            previous.sort((a, b) => (a.creationTime < b.creationTime ? 1 : -1));
            upload.resumeFromPreviousUpload(previous[0]);
            c.resuming = true; // the offset is known from the first progress report
            setStatus(c, "resuming an earlier upload…", "uploading");
          }
          upload.start();
        },
        () => upload.start(),
      );
    });
  }

  async function ensureBatch() {
    const body = batchBody();
    if (body.id) {
      try {
        return await L.api("GET", "/api/v1/batches/" + encodeURIComponent(body.id)).then((p) => p.batch);
      } catch (error) {
        if (!(error instanceof L.ApiError && error.status === 404)) throw error;
      }
    }
    return L.api("POST", "/api/v1/batches", body);
  }

  async function startUploads() {
    if (uploading || !chosen.length) return;
    L.clearError();
    if (typeof tus === "undefined" || !tus.isSupported) {
      L.showError("This browser cannot do resumable uploads (tus is not supported).");
      return;
    }
    uploading = true;
    updateSelection();
    $("upload-done").hidden = true;
    let batch;
    try {
      batch = await ensureBatch();
    } catch (error) {
      L.showError(error);
      uploading = false;
      updateSelection();
      return;
    }
    const queue = chosen.filter((c) => c.li.dataset.state !== "done");
    let ok = 0;
    const worker = async () => {
      while (queue.length) {
        const c = queue.shift();
        setStatus(c, "starting…", "uploading");
        if (await uploadOne(c, batch.id, batch.processor)) ok += 1;
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    uploading = false;
    updateSelection();
    const done = $("upload-done");
    const failed = chosen.filter((c) => c.li.dataset.state === "failed").length;
    done.replaceChildren(
      failed
        ? L.el("span", { class: "error", text: L.plural(failed, "upload") + " failed (see above); press the button again to retry them. " })
        : L.el("span", { text: (ok === 1 ? "The file is" : "All " + L.plural(ok, "file") + " are") + " uploaded into batch " }),
      batchLink(batch.id, failed ? "Open batch " + batch.id : batch.id),
      failed ? "" : ". ",
      failed ? "" : batchLink(batch.id, "Watch it being processed"),
    );
    done.hidden = false;
    showPrevious();
    L.notify(failed ? L.plural(failed, "upload") + " failed." : "All uploads finished.");
  }

  // ------------------------------------------------------------------ earlier visits

  async function unfinished() {
    try {
      const all = await tus.defaultOptions.urlStorage.findAllUploads();
      return all.filter((u) => (u.urlStorageKey || "").startsWith("tus::" + PREFIX));
    } catch (_) {
      return [];
    }
  }

  async function showPrevious() {
    if (typeof tus === "undefined") return;
    const previous = await unfinished();
    const box = $("previous");
    if (!previous.length || uploading) {
      box.hidden = true;
      return;
    }
    const batches = [...new Set(previous.map((u) => (u.metadata || {}).batch).filter(Boolean))];
    const names = previous.map((u) => (u.metadata || {}).filename).filter(Boolean);
    const batch = batches[0];
    $("previous-text").textContent =
      L.plural(previous.length, "unfinished upload") +
      " from an earlier visit" + (batch ? " into batch " + batches.join(", ") : "") + " (" +
      names.slice(0, 5).join(", ") + (names.length > 5 ? ", …" : "") +
      "). Choose or drop the same files again to continue where they stopped.";
    $("previous-use").hidden = !batch;
    $("previous-use").textContent = "Resume into batch " + batch;
    $("previous-use").onclick = () => {
      $("batch-id").value = batch;
      const first = previous.find((u) => (u.metadata || {}).batch === batch);
      if (first && first.metadata.processor) $("processor").value = first.metadata.processor;
      showOptionsExample();
      L.notify("Batch id set to " + batch + "; choose the same files to resume.");
      $("choose-files").focus();
    };
    $("previous-forget").onclick = async () => {
      for (const u of previous) {
        await tus.defaultOptions.urlStorage.removeUpload(u.urlStorageKey);
      }
      box.hidden = true;
      L.notify("Forgot the unfinished uploads.");
    };
    box.hidden = false;
  }

  // ------------------------------------------------------------------ start

  L.ready.then(() => {
    $("paths-form").addEventListener("submit", submitPaths);
    $("processor").addEventListener("input", showOptionsExample);
    showOptionsExample();
    loadDeclaredOptions();
    $("choose-files").addEventListener("click", () => $("file-input").click());
    $("choose-folder").addEventListener("click", () => $("folder-input").click());
    $("file-input").addEventListener("change", (e) => {
      add([...e.target.files].map((file) => ({ file, path: file.name })));
      e.target.value = "";
    });
    $("folder-input").addEventListener("change", (e) => {
      add([...e.target.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
      e.target.value = "";
    });
    const drop = $("drop");
    for (const type of ["dragenter", "dragover"]) {
      drop.addEventListener(type, (e) => {
        e.preventDefault();
        e.dataTransfer.dropEffect = "copy";
        drop.classList.add("over");
      });
    }
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", async (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      try {
        add(await fromDrop(e.dataTransfer));
      } catch (error) {
        L.showError("Could not read the dropped items: " + L.describe(error));
      }
    });
    $("upload-start").addEventListener("click", startUploads);
    $("upload-clear").addEventListener("click", () => {
      chosen = [];
      $("uploads").replaceChildren();
      $("upload-done").hidden = true;
      updateSelection();
    });
    window.addEventListener("beforeunload", (e) => {
      if (uploading) e.preventDefault();
    });
    showPrevious();
  });
})();

// Batch page, Settings: change the name, priority and max attempts of a submitted batch
// (PATCH /api/v1/batches/{id}). The form is filled when opened, not on every live update, so
// what the user is typing is never overwritten; the server's refusal is shown in the form.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const root = $("batch");
  const url = "/api/v1/batches/" + encodeURIComponent(root.dataset.batchId);
  let shown = null; // the batch as the form was filled from it

  function fill(batch) {
    shown = batch;
    $("settings-name").value = batch.name || "";
    $("settings-priority").value = String(batch.priority);
    $("settings-max-attempts").value = String(batch.max_attempts);
  }

  function showError(message) {
    $("settings-error").textContent = message;
    $("settings-error").hidden = !message;
  }

  // A whole number from a number field, or the text as typed (the server then says why not).
  function number(input) {
    const text = input.value.trim();
    return /^-?\d+$/.test(text) ? Number(text) : text;
  }

  // Only what changed is sent: a field left alone keeps the server's value.
  function changes() {
    const body = {};
    const name = $("settings-name").value.trim();
    if (name !== (shown.name || "")) body.name = name;
    const priority = number($("settings-priority"));
    if (priority !== shown.priority) body.priority = priority;
    const maxAttempts = number($("settings-max-attempts"));
    if (maxAttempts !== shown.max_attempts) body.max_attempts = maxAttempts;
    return body;
  }

  async function open() {
    if (!$("settings").open) return;
    showError("");
    $("settings-saved").textContent = "";
    try {
      fill((await L.api("GET", url)).batch);
    } catch (error) {
      showError(L.describe(error));
    }
  }

  async function save(event) {
    event.preventDefault();
    if (!shown) return;
    showError("");
    $("settings-saved").textContent = "";
    const body = changes();
    if (!Object.keys(body).length) {
      $("settings-saved").textContent = "Nothing changed.";
      return;
    }
    $("settings-save").disabled = true;
    try {
      // L.api sends JSON with X-Requested-With, as every change the page makes.
      const progress = await L.api("PATCH", url, body);
      fill(progress.batch);
      root.dispatchEvent(new CustomEvent("ledger:batch", { detail: progress }));
      $("settings-saved").textContent = "Saved.";
    } catch (error) {
      showError(L.describe(error));
    } finally {
      $("settings-save").disabled = false;
    }
  }

  L.ready.then(() => {
    $("settings").addEventListener("toggle", open);
    $("settings-form").addEventListener("submit", save);
  });
})();

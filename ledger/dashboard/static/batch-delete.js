// Batch page: the Delete button and its confirmation dialog. Deleting is final, so the
// dialog says what goes and offers to cancel running documents (force) only when asked;
// the API refuses a batch with running documents otherwise, and the dialog shows why.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const root = $("batch");
  if (!root) return;
  const path = "/api/v1/batches/" + encodeURIComponent(root.dataset.batchId);
  const dialog = $("delete-dialog");

  function open() {
    $("delete-error").hidden = true;
    $("delete-force").checked = false;
    dialog.showModal();
  }

  async function confirmed(event) {
    event.preventDefault();
    const button = $("delete-confirm");
    button.disabled = true;
    try {
      await L.api("DELETE", path + ($("delete-force").checked ? "?force=true" : ""));
      window.location.assign("/");
    } catch (error) {
      $("delete-error").textContent = L.describe(error);
      $("delete-error").hidden = false;
      button.disabled = false;
    }
  }

  L.ready.then(() => {
    $("delete-batch").addEventListener("click", open);
    $("delete-keep").addEventListener("click", () => dialog.close());
    $("delete-form").addEventListener("submit", confirmed);
  });
})();

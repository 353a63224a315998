// The profile page's export: poll its status, show the progress, reload once it is done.
(function () {
  "use strict";
  const box = document.querySelector("[data-export-status-url]");
  if (!box) return;
  const url = box.getAttribute("data-export-status-url");
  const bar = box.querySelector("[data-export-progress]");
  const percent = box.querySelector("[data-export-percent]");

  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.status === 404) {  // the export went (expired, or the account is gone)
        window.location.reload();
        return;
      }
      if (response.ok) {
        const state = await response.json();
        bar.value = state.progress;
        bar.textContent = state.progress + "%";
        percent.textContent = String(state.progress);
        if (state.status !== "queued" && state.status !== "running") {
          window.location.reload();
          return;
        }
      }
    } catch (error) {
      // A lost connection: try again at the next tick.
    }
    window.setTimeout(poll, 1500);
  }
  window.setTimeout(poll, 1000);
})();

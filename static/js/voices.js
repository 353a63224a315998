// The companion settings' voice field: when the speech server lists its voices (the datalist's
// data-voices-url answers {"available": bool, "voices": ["name", …]}), they replace the
// suggested names; a site without a speech back end says so.
(function () {
  "use strict";
  const list = document.getElementById("voice-names");
  const url = list && list.getAttribute("data-voices-url");
  if (!url) return;
  fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
    .then((response) => (response.ok ? response.json() : null))
    .then((body) => {
      const note = document.querySelector("[data-voice-unavailable]");
      if (note && body && body.available === false) note.hidden = false;
      const names = body && Array.isArray(body.voices) ? body.voices.filter((v) => typeof v === "string" && v) : [];
      if (!names.length) return;
      list.textContent = "";
      for (const name of names.slice(0, 500)) {
        const option = document.createElement("option");
        option.value = name;
        list.appendChild(option);
      }
    })
    .catch(() => {
      // The suggestions stay.
    });
})();

/* global gettext, interpolate */
// The companion settings page: sections that open when their link is followed or a field in them
// is invalid, a live count for every text with a limit (data-max-chars: the server refuses text
// over it; nothing is cut here), and the greetings' Add / Remove buttons.
(function () {
  "use strict";
  const form = document.querySelector("[data-editor]");
  if (!form) return;

  function openTarget() {
    const id = decodeURIComponent(location.hash.slice(1));
    const target = id && document.getElementById(id);
    if (target && target.tagName === "DETAILS") target.open = true;
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
  // The browser cannot show an invalid field inside a closed section: open it first.
  form.addEventListener(
    "invalid",
    (event) => {
      const section = event.target.closest("details");
      if (section) section.open = true;
    },
    true,
  );

  const numbers = new Intl.NumberFormat(document.documentElement.lang || undefined);
  function counted(field) {
    const limit = Number(field.getAttribute("data-max-chars"));
    if (!limit || field.nextElementSibling?.classList.contains("char-count")) return;
    const counter = document.createElement("p");
    counter.className = "char-count small muted";
    field.after(counter);
    const update = () => {
      // Characters as the server counts them (code points), not UTF-16 units.
      const length = Array.from(field.value.replace(/\r\n/g, "\n")).length;
      const over = length > limit;
      counter.classList.toggle("over", over);
      counter.textContent = over
        ? interpolate(gettext("%(count)s / %(limit)s characters: too long, shorten it to save."), {
            count: numbers.format(length),
            limit: numbers.format(limit),
          }, true)
        : interpolate(gettext("%(count)s / %(limit)s characters"), {
            count: numbers.format(length),
            limit: numbers.format(limit),
          }, true);
    };
    field.addEventListener("input", update);
    update();
  }
  form.querySelectorAll("[data-max-chars]").forEach(counted);

  form.querySelectorAll("[data-text-list]").forEach((list) => {
    const add = list.querySelector("[data-add-item]");
    const label = list.getAttribute("data-item-label") || "";
    let next = list.querySelectorAll("[data-text-list-item]").length + 1;
    function wire(item) {
      const remove = item.querySelector("[data-remove-item]");
      remove.hidden = false;
      remove.addEventListener("click", () => {
        const items = list.querySelectorAll("[data-text-list-item]");
        const box = item.querySelector("textarea");
        if (items.length > 1) {
          const following = item.nextElementSibling;
          item.remove();
          (following?.querySelector("textarea") || add).focus();
        } else {
          box.value = "";
          box.dispatchEvent(new Event("input"));
          box.focus();
        }
      });
    }
    list.querySelectorAll("[data-text-list-item]").forEach(wire);
    add.hidden = false;
    add.addEventListener("click", () => {
      const last = list.querySelectorAll("[data-text-list-item]");
      const item = last[last.length - 1].cloneNode(true);
      const box = item.querySelector("textarea");
      box.value = "";
      box.id = `${box.id.replace(/_\d+$/, "")}_${next}`;
      box.setAttribute("aria-label", `${label} ${next}`);
      next += 1;
      item.querySelector(".char-count")?.remove();
      add.before(item);
      wire(item);
      counted(box);
      box.focus();
    });
  });
})();

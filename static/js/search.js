// The header's search box: "/" anywhere on the page (except while typing) puts the cursor in it.
const box = document.querySelector("[data-search-box]");

function typing(target) {
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}

if (box) {
  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    event.preventDefault();
    box.focus();
    box.select();
  });
}

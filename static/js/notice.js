// The demo notice: one line under the header, hidden for the rest of the browser session once
// closed (sessionStorage), so it never pushes a page down twice. Without JavaScript it simply stays.

const KEY = "companionhub.demo-notice-hidden";

function hidden() {
  try {
    return sessionStorage.getItem(KEY) === "1";
  } catch {
    return false; // storage blocked: show it
  }
}

const notice = document.querySelector("[data-demo-notice]");
if (notice) {
  const text = notice.querySelector(".demo-text");
  const close = notice.querySelector("[data-demo-close]");
  if (hidden()) notice.hidden = true;
  // Cut to one line: the whole sentence stays its tooltip (and is read in full by screen readers).
  if (text) text.title = text.textContent.trim().replace(/\s+/g, " ");
  if (close) {
    close.hidden = false;
    close.addEventListener("click", () => {
      notice.hidden = true;
      try {
        sessionStorage.setItem(KEY, "1");
      } catch {
        // storage blocked: hidden on this page only
      }
    });
  }
}

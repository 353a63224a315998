// The chat's side panel ("Right now", the chat list, the chat's tools): beside the conversation
// on wide screens, a drawer on narrow ones. The toggle opens it, and the close button, the scrim
// or Escape close it; focus goes into the drawer and back to the toggle. Without this script
// the panel simply follows the conversation.

const NARROW = "(max-width: 900px)";

export class SidePanel {
  constructor(root) {
    this.root = root;
    this.panel = root.querySelector("[data-panel]");
    this.toggle = root.querySelector("[data-panel-toggle]");
    this.close = root.querySelector("[data-panel-close]");
    this.scrim = root.querySelector("[data-panel-scrim]");
    if (!this.panel || !this.toggle) return;
    this.narrow = window.matchMedia(NARROW);
    root.dataset.drawer = ""; // the stylesheet makes the panel a drawer on narrow screens
    this.toggle.hidden = false;
    if (this.close) this.close.hidden = false;
    this.toggle.addEventListener("click", () => (this.isOpen() ? this.hide() : this.show()));
    if (this.close) this.close.addEventListener("click", () => this.hide());
    if (this.scrim) this.scrim.addEventListener("click", () => this.hide());
    root.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.isOpen()) {
        event.preventDefault();
        this.hide();
      }
    });
    // Back to a wide screen: the panel is beside the conversation again, nothing to close.
    this.narrow.addEventListener("change", () => {
      if (!this.narrow.matches) this.hide(false);
    });
  }

  isOpen() {
    return this.root.classList.contains("panel-open");
  }

  show() {
    this.root.classList.add("panel-open");
    this.toggle.setAttribute("aria-expanded", "true");
    if (this.scrim) this.scrim.hidden = false;
    (this.close || this.panel).focus();
  }

  // refocus: give focus back to the toggle (not when the drawer went away with a wide screen).
  hide(refocus = true) {
    if (!this.isOpen()) return;
    this.root.classList.remove("panel-open");
    this.toggle.setAttribute("aria-expanded", "false");
    if (this.scrim) this.scrim.hidden = true;
    if (refocus && this.narrow.matches) this.toggle.focus();
  }
}

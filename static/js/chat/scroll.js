// Keeps the conversation at its newest message while the reader is there, and leaves them be
// while they read older ones. Whatever makes the log taller (a token, a picture that loaded, an
// action bar, a new message) is seen by a ResizeObserver on each message and a MutationObserver
// on the list, so nothing has to remember to scroll. New content below a reader who scrolled up
// shows the "Jump to latest" button instead.

const AT_BOTTOM_PX = 24; // this close to the end counts as "at the newest message"

export class StickToBottom {
  // log: the scrolling <ol data-log>; jumpButton: the "Jump to latest" button (optional).
  constructor(log, jumpButton) {
    this.log = log;
    this.jump = jumpButton;
    this.stuck = true;
    this.top = log.scrollTop; // where the view was, last time we looked
    this.below = this.distance(); // how far the end was below the view, then
    this.sizes = new ResizeObserver(() => this.changed());
    this.sizes.observe(log);
    for (const child of log.children) this.sizes.observe(child);
    new MutationObserver((records) => {
      for (const record of records) record.addedNodes.forEach((node) => node.nodeType === 1 && this.sizes.observe(node));
      this.changed();
    }).observe(log, { childList: true });
    log.addEventListener("scroll", () => this.scrolled(), { passive: true });
    // Scrolling up by wheel lets go at once, before the next token could pull the view back.
    log.addEventListener("wheel", (event) => {
      if (event.deltaY < 0) this.stuck = false;
    }, { passive: true });
    if (this.jump) this.jump.addEventListener("click", () => this.toEnd());
  }

  distance() {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight;
  }

  // To the newest message, and stay there.
  toEnd() {
    this.stuck = true;
    this.log.scrollTop = this.log.scrollHeight;
    this.top = this.log.scrollTop;
    this.below = this.distance();
    this.showJump(false);
  }

  // Only a move up lets go: content that grew between our scroll and its event must not.
  scrolled() {
    const top = this.log.scrollTop;
    if (top < this.top - 1) this.stuck = false;
    this.top = top;
    this.below = this.distance();
    if (this.below <= AT_BOTTOM_PX) {
      this.stuck = true;
      this.showJump(false);
    }
  }

  // The reader went to an older message (a search result, a link): stay there.
  release() {
    this.stuck = false;
    this.top = this.log.scrollTop;
    this.below = this.distance();
  }

  // The log's content or size changed: follow it, or say that there is more below.
  changed() {
    if (this.stuck) {
      this.toEnd();
      return;
    }
    const below = this.distance();
    // Older messages put above keep the distance to the end (ChatLog.loadOlder keeps the view).
    if (below > this.below + 1) this.showJump(true);
    this.below = below;
  }

  showJump(visible) {
    if (this.jump) this.jump.hidden = !visible;
  }
}

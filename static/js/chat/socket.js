/* global gettext, ngettext, interpolate */
// The chat's one websocket (docs/websocket.md): connect, reconnect with backoff, reconnect when a
// reply goes quiet, send frames, and hand each event to the handler named by its type.

// Every event of the conversation carries its sequence number ``seq``; the snapshot carries the
// number it is as of. A reconnect asks for what came after the last number seen (``?after=``),
// an event seen twice is dropped, and a number that skips ahead means something was missed: the
// socket reconnects and the server replays it (or sends a fresh snapshot). If a reply goes quiet,
// reconnect too.
const QUIET_MS = 30000;
const QUIET_CHECK_MS = 5000;
// Closed by the server because of who is asking: reconnecting would not help.
const SIGNED_OUT = [4401, 4403, 4404];

export class ChatSocket {
  // path: the websocket's path (the page's data-ws-path). options:
  //   statusEl: where the connection's state is shown; root: gets the class "offline" while closed
  //   waiting(): true while events are due (a reply is being written)
  //   onClose(): the socket closed; answers to frames sent on it will not come
  constructor(path, { statusEl, root, waiting, onClose }) {
    this.path = path;
    this.handlers = {};
    this.statusEl = statusEl;
    this.root = root;
    this.waiting = waiting;
    this.onClose = onClose;
    this.socket = null;
    this.attempt = 0; // reconnects since the last open, for the backoff
    this.lastEventAt = Date.now();
    this.lastSeq = null; // the number of the last conversation event handled
  }

  // handlers: {event type: function(event)}; events of other types are ignored.
  start(handlers) {
    this.handlers = handlers;
    setInterval(() => this.checkQuiet(), QUIET_CHECK_MS);
    this.connect();
  }

  isOpen() {
    return !!this.socket && this.socket.readyState === WebSocket.OPEN;
  }

  // Sends ``frame``; false (and nothing sent) when the socket is not open.
  send(frame) {
    if (!this.isOpen()) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  checkQuiet() {
    if (this.waiting() && this.isOpen() && Date.now() - this.lastEventAt > QUIET_MS) {
      this.lastEventAt = Date.now();
      this.socket.close(4000, "quiet");
    }
  }

  // Whether ``event`` is next in the conversation's sequence (events without a number always are).
  inSequence(socket, event) {
    if (typeof event.seq !== "number") return true;
    if (event.type === "snapshot" || event.type === "group.snapshot") {
      // 0: the conversation has no numbered events yet. Its first one is numbered from the
      // server's clock, not 1, so the next number seen starts the sequence.
      this.lastSeq = event.seq || null;
      return true;
    }
    if (this.lastSeq !== null && event.seq <= this.lastSeq) return false; // seen already
    if (this.lastSeq !== null && event.seq > this.lastSeq + 1) {
      socket.close(4000, "gap"); // missed something: the reconnect replays it
      return false;
    }
    this.lastSeq = event.seq;
    return true;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const resume = this.lastSeq === null ? "" : "?after=" + this.lastSeq;
    const socket = new WebSocket(scheme + location.host + this.path + resume);
    this.socket = socket;
    this.statusEl.textContent = this.attempt ? gettext("Reconnecting…") : gettext("Connecting…");
    socket.onopen = () => {
      this.attempt = 0;
      this.statusEl.textContent = gettext("Online");
      this.root.classList.remove("offline");
    };
    socket.onmessage = (message) => {
      this.lastEventAt = Date.now();
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (!event || !this.inSequence(socket, event)) return;
      if (Object.hasOwn(this.handlers, event.type)) this.handlers[event.type](event);
    };
    socket.onclose = (event) => {
      this.root.classList.add("offline");
      this.onClose();
      if (SIGNED_OUT.includes(event.code)) {
        this.statusEl.textContent = gettext("Signed out — reload the page.");
        return;
      }
      this.attempt += 1;
      const delay = Math.min(15000, 500 * Math.pow(2, this.attempt)) * (0.75 + Math.random() * 0.5);
      this.statusEl.textContent = gettext("Connection lost — reconnecting…");
      setTimeout(() => this.connect(), delay);
    };
  }
}

/* global gettext, ngettext, interpolate */
// The chat's one websocket (docs/websocket.md): connect, reconnect with backoff, reconnect when a
// reply goes quiet, send frames, and hand each event to the handler named by its type.

// The channel layer delivers at most once: if a reply goes quiet, reconnect and let the snapshot
// (read from the database) say where it stands.
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

  connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + this.path);
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
      if (event && Object.hasOwn(this.handlers, event.type)) this.handlers[event.type](event);
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

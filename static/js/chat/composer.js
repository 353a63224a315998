// The message box: sending (shown at once as a pending bubble until "message.accepted"), editing
// the user's last message, and "Continue the reply". Without an open socket the form posts as a
// plain form instead.

import { messageIdOf, rawText } from "./render.js";

export class Composer {
  // root: the page's .chat section; socket: the ChatSocket; chatLog: the ChatLog; run: the RunView.
  constructor(root, { socket, chatLog, run }) {
    this.socket = socket;
    this.chatLog = chatLog;
    this.run = run;
    this.form = root.querySelector("[data-composer]");
    this.textarea = this.form.querySelector("textarea");
    this.wantImage = this.form.querySelector("[data-want-image]");
    this.sendButton = this.form.querySelector("[data-send]");
    this.continueButton = root.querySelector("[data-continue]");

    this.pending = new Map(); // client_id -> {text, bubble}: sent, not yet accepted
    this.counter = 0;
    this.editingId = null; // the message being edited (the server refuses if it is no longer the last)
    this.sentEdit = ""; // the edited text last sent: the page shows it once accepted, gives it back if refused

    this.form.addEventListener("submit", (event) => this.submit(event));
    this.textarea.addEventListener("keydown", (event) => this.keydown(event));
    if (this.continueButton) {
      this.continueButton.addEventListener("click", () => {
        const cut = this.chatLog.lastOf("assistant");
        if (cut && this.socket.send({ type: "message.continue", message_id: messageIdOf(cut) })) {
          this.run.expect("continue");
        }
      });
    }
  }

  get editing() {
    return this.editingId !== null;
  }

  submit(event) {
    const text = this.textarea.value.trim();
    if (!text) {
      event.preventDefault();
      return;
    }
    if (!this.socket.isOpen()) return; // the form posts instead
    event.preventDefault();
    if (this.editing) {
      if (this.socket.send({ type: "message.edit", content: text, message_id: this.editingId })) {
        this.run.expect("edit");
        this.sentEdit = text;
        this.textarea.value = "";
        this.stopEdit();
        this.run.clearError();
      }
      return;
    }
    this.counter += 1;
    const clientId = "c" + Date.now() + "-" + this.counter;
    const bubble = this.chatLog.addBubble("user", text);
    bubble.classList.add("pending");
    this.pending.set(clientId, { text: text, bubble: bubble });
    this.socket.send({
      type: "message.send",
      content: text,
      image: !!(this.wantImage && this.wantImage.checked),
      client_id: clientId,
    });
    this.textarea.value = "";
    if (this.wantImage) this.wantImage.checked = false;
    this.run.clearError();
  }

  keydown(event) {
    if (event.key === "Escape" && this.editing) {
      this.textarea.value = "";
      this.stopEdit();
      return;
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!this.sendButton.disabled) this.form.requestSubmit();
    }
  }

  startEdit(li) {
    this.editingId = messageIdOf(li);
    this.textarea.value = rawText(li.querySelector(".bubble-text"));
    this.sendButton.textContent = "Save and resend";
    this.form.classList.add("editing");
    this.textarea.focus();
  }

  stopEdit() {
    this.editingId = null;
    this.sendButton.textContent = "Send";
    this.form.classList.remove("editing");
  }

  // A turn is being answered: nothing new can be sent until it ends.
  setBusy(busy) {
    this.sendButton.disabled = busy;
  }

  // ``visible``: the last reply was cut at the length limit and nothing is being written.
  showContinue(visible) {
    if (this.continueButton) this.continueButton.hidden = !visible;
  }

  // "message.accepted": the pending bubble of ``clientId`` is message ``messageId`` now.
  accepted(clientId, messageId) {
    const sent = this.pending.get(clientId);
    if (!sent) return;
    sent.bubble.id = "message-" + messageId;
    sent.bubble.dataset.messageId = messageId;
    sent.bubble.classList.remove("pending");
    this.pending.delete(clientId);
  }

  // A refused frame: give the text back so nothing typed is lost (``wasEdit``: it was an edit).
  refused(wasEdit) {
    if (wasEdit && !this.textarea.value) this.textarea.value = this.sentEdit;
    for (const sent of this.pending.values()) {
      sent.bubble.remove();
      if (!this.textarea.value) this.textarea.value = sent.text;
    }
    this.pending.clear();
  }
}

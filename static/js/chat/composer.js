/* global gettext, ngettext, interpolate */
// The message box: sending (shown at once as a pending bubble until "message.accepted"), editing
// a message (any message is corrected in place; your last one can also be answered afresh), and
// "Continue the reply". Without an open socket the form posts as a plain form instead.

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
    this.saveOnlyButton = this.form.querySelector("[data-save-only]");
    this.stopEditButton = this.form.querySelector("[data-stop-edit]");
    this.continueButton = root.querySelector("[data-continue]");

    this.pending = new Map(); // client_id -> {text, bubble}: sent, not yet accepted
    this.counter = 0;
    this.editingBubble = null; // the message being edited
    this.resendDefault = false; // it is your last message: saving answers it afresh
    this.sentEdit = null; // {id, text}: the edit last sent, shown once accepted, given back if refused
    this.draft = ""; // what was typed before an edit began: back once the edit is saved or dropped

    this.form.addEventListener("submit", (event) => this.submit(event));
    this.textarea.addEventListener("keydown", (event) => this.keydown(event));
    if (this.saveOnlyButton) {
      this.saveOnlyButton.addEventListener("click", () => this.saveEdit(this.textarea.value.trim(), false));
    }
    if (this.stopEditButton) this.stopEditButton.addEventListener("click", () => this.cancelEdit());
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
    return this.editingBubble !== null;
  }

  // Editing your last message, which saving answers afresh.
  get resending() {
    return this.editing && this.resendDefault;
  }

  // The message being edited is still on the page (another tab may have removed it).
  editedBubbleOnPage() {
    return this.editing && this.editingBubble.isConnected;
  }

  submit(event) {
    const text = this.textarea.value.trim();
    if (!text) {
      event.preventDefault();
      return;
    }
    if (this.editing) {
      event.preventDefault(); // an edit is never posted as a new message
      this.saveEdit(text, this.resendDefault);
      return;
    }
    if (!this.socket.isOpen()) return; // the form posts instead
    event.preventDefault();
    this.counter += 1;
    const clientId = "c" + Date.now() + "-" + this.counter;
    const bubble = this.chatLog.addBubble("user", text);
    bubble.classList.add("pending");
    this.chatLog.scrollToEnd(); // what you send is where you look next
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

  // Sends the edit: ``resend`` answers your last message afresh, else it is corrected in place.
  saveEdit(text, resend) {
    if (!this.editing || !text) return;
    const id = messageIdOf(this.editingBubble);
    if (!this.socket.send({ type: "message.edit", content: text, message_id: id, resend: resend })) {
      this.run.showError(gettext("Not connected: your edit is not saved yet. Try again in a moment."), null);
      return;
    }
    this.run.expect(resend ? "edit" : "correct", id);
    this.sentEdit = { id: id, text: text };
    this.textarea.value = this.takeDraft();
    this.stopEdit();
    this.run.clearError();
  }

  takeDraft() {
    const draft = this.draft;
    this.draft = "";
    return draft;
  }

  keydown(event) {
    if (event.key === "Escape" && this.editing) {
      this.cancelEdit();
      return;
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!this.sendButton.disabled) this.form.requestSubmit();
    }
  }

  // Edit ``li`` in the message box (``text``: what to start from; its text as written by default).
  startEdit(li, text = null) {
    if (this.editing) this.editingBubble.classList.remove("being-edited");
    else this.draft = this.textarea.value; // a message being written waits
    this.editingBubble = li;
    li.classList.add("being-edited");
    this.resendDefault = li === this.chatLog.lastUserMessage();
    this.textarea.value = text !== null ? text : rawText(li.querySelector(".bubble-text"));
    this.sendButton.textContent = this.resendDefault ? gettext("Save and resend") : gettext("Save");
    if (this.saveOnlyButton) this.saveOnlyButton.hidden = !this.resendDefault;
    if (this.stopEditButton) this.stopEditButton.hidden = false;
    this.showImageToggle(false);
    this.form.classList.add("editing");
    this.textarea.focus();
  }

  // Leave edit mode; what is typed stays.
  stopEdit() {
    if (this.editing) this.editingBubble.classList.remove("being-edited");
    this.editingBubble = null;
    this.resendDefault = false;
    this.sendButton.textContent = gettext("Send");
    if (this.saveOnlyButton) this.saveOnlyButton.hidden = true;
    if (this.stopEditButton) this.stopEditButton.hidden = true;
    this.showImageToggle(true);
    this.form.classList.remove("editing");
  }

  // Escape or "Stop editing": the edit is dropped, the message being written (if any) is back.
  cancelEdit() {
    this.textarea.value = this.takeDraft();
    this.stopEdit();
    this.textarea.focus();
  }

  showImageToggle(visible) {
    const toggle = this.wantImage && this.wantImage.closest("label");
    if (toggle) toggle.hidden = !visible;
  }

  // A turn is being answered: nothing new can be sent (or saved) until it ends.
  setBusy(busy) {
    this.sendButton.disabled = busy;
    if (this.saveOnlyButton) this.saveOnlyButton.disabled = busy;
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

  // The text of the edit last sent (shown once it is accepted).
  sentEditText() {
    return this.sentEdit ? this.sentEdit.text : null;
  }

  // A refused frame: give the text back so nothing typed is lost. ``editKind``: "edit" or
  // "correct" when it was an edit, which goes back into edit mode while its message is here.
  refused(editKind) {
    if (editKind && this.sentEdit && !this.editing) {
      const bubble = this.chatLog.byId(this.sentEdit.id);
      if (bubble) this.startEdit(bubble, this.sentEdit.text);
      else if (!this.textarea.value) this.textarea.value = this.sentEdit.text;
    }
    for (const sent of this.pending.values()) {
      sent.bubble.remove();
      if (!this.textarea.value) this.textarea.value = sent.text;
    }
    this.pending.clear();
  }
}

/* global gettext, ngettext, interpolate */
// The reply being written: which run it is, the bubble it streams into, its progress, step and
// stop button, its error and Retry, and (in a group) who is speaking. docs/websocket.md has the
// events; main.js hands each to the method named after it.

import { markSpeaking, pageLanguage, rawText, renderRich } from "./render.js";

// What this tab asks for that starts a run (RunView.expect): its "message.accepted" shows it so.
const RUN_KINDS = ["regenerate", "continue", "edit", "repaint"];

// {step_name: label}: the server's step registry, from the page's {% step_labels %}
// (a json_script element "step-labels"). A step without a label shows none.
export function readStepLabels(doc = document) {
  const el = doc.getElementById("step-labels");
  if (!el) return {};
  try {
    return JSON.parse(el.textContent) || {};
  } catch {
    return {};
  }
}

// ``text`` said of (or by) one companion of a group: "Aya: Writing…".
function speakerSays(name, text) {
  return interpolate(gettext("%(name)s: %(text)s"), { name: name, text: text }, true);
}

// Offsets from the server count Unicode code points; a JavaScript string's length counts an emoji
// as two. ``points`` keeps the reply's length the server's way.
function setContent(run, text) {
  run.content = text;
  run.points = Array.from(text).length;
}

export class RunView {
  // root: the page's .chat section. options:
  //   chatLog: the ChatLog the replies stream into
  //   send(frame): sends a frame, false when the socket is not open
  //   turns: a message is answered by several companions one after another, each reply named
  //     by its sender ("turn.speaker" comes before its first words), and only "turn.done" ends
  //     the turn (a group); otherwise a reply is the whole turn
  //   labels: {step_name: label} (readStepLabels())
  //   onBusy(busy): a turn began or ended
  constructor(root, { chatLog, send, turns, labels, onBusy }) {
    this.chatLog = chatLog;
    this.send = send;
    this.turns = turns;
    this.labels = labels;
    this.onBusy = onBusy;
    this.root = root;
    this.runBox = root.querySelector("[data-run]");
    this.bar = root.querySelector("[data-progress-bar]");
    this.progressEl = this.runBox.querySelector("[role=progressbar]");
    this.stepEl = root.querySelector("[data-step]");
    this.cancelButton = root.querySelector("[data-cancel]");
    this.errorBox = root.querySelector("[data-error]");
    this.errorText = root.querySelector("[data-error-text]");
    this.retryButton = root.querySelector("[data-retry]");

    this.current = null; // {id, bubble, content, points, kind?}: the run whose events come now
    this.turnRunId = null; // the turn's latest run: the stop button stops a group's turn between replies too
    this.speaker = null; // {companion_id, sender} of the reply being written, when events name one
    this.failedRunId = null; // what Retry starts again
    this.retryLater = null; // a group's failed reply: Retry once the turn has ended, if it is still the latest
    this.busy = false; // a turn is being answered: no new message, no action that needs the server idle
    this.ownRuns = new Set(); // runs this tab started: their "turn.started" is news only for the other tabs
    this.expected = null; // {kind, messageId, extra}: what this tab asked for, so its answer shows that way

    this.cancelButton.addEventListener("click", () => {
      const runId = this.current ? this.current.id : this.turnRunId;
      if (runId) this.send({ type: "run.cancel", run_id: runId });
    });
    this.retryButton.addEventListener("click", () => {
      if (!this.failedRunId) return;
      this.chatLog.removeStaleReply();
      this.send({ type: "run.retry", run_id: this.failedRunId });
      this.clearError();
    });
  }

  // ---- what this tab asked for ----

  // kind: a run ("regenerate" | "continue" | "edit" | "repaint") whose "message.accepted" is due,
  // or an answer of its own ("correct": "message.updated"; "branch": "conversation.branched").
  // messageId: the reply a repaint paints again, the message corrected; extra: anything to keep.
  expect(kind, messageId = null, extra = null) {
    this.expected = { kind, messageId, extra };
  }

  // What was asked for ({kind, messageId, extra} or null), forgotten: it was answered, refused or lost.
  takeExpected() {
    const asked = this.expected;
    this.expected = null;
    return asked;
  }

  // takeExpected(), only when what was asked for is ``kind`` (and ``messageId``, when given).
  takeExpectedIf(kind, messageId = null) {
    const asked = this.expected;
    if (!asked || asked.kind !== kind || (messageId !== null && asked.messageId !== messageId)) return null;
    return this.takeExpected();
  }

  isOwn(runId) {
    return this.ownRuns.has(runId);
  }

  // ---- status: progress, busy, error ----

  label(step) {
    return Object.hasOwn(this.labels, step) ? this.labels[step] : "";
  }

  showProgress(value, step, percent) {
    this.runBox.hidden = false;
    this.bar.style.width = Math.max(0, Math.min(100, value)) + "%";
    this.progressEl.setAttribute("aria-valuenow", String(value));
    const label = this.label(step);
    const named = this.turns && this.speaker && label;
    let text = named ? speakerSays(this.speaker.sender, label) : label;
    // The picture service's own progress, when it reports one.
    if (step === "generate_image" && typeof percent === "number") {
      text += " " + new Intl.NumberFormat(pageLanguage(), { style: "percent" }).format(percent / 100);
    }
    this.stepEl.textContent = text;
    this.setBusy(true);
  }

  setBusy(busy) {
    this.busy = busy;
    this.cancelButton.hidden = !busy;
    if (!busy) this.runBox.hidden = true;
    this.onBusy(busy);
  }

  // A run's events are due.
  isWriting() {
    return this.current !== null;
  }

  // A reply is on its way, or the page is between a group's replies.
  isBusy() {
    return !!this.current || this.busy;
  }

  // runId: the run Retry starts again (none: no Retry).
  showError(message, runId) {
    this.errorBox.hidden = false;
    this.errorText.textContent = message;
    this.offerRetry(runId);
  }

  offerRetry(runId) {
    this.failedRunId = runId || null;
    this.retryButton.hidden = !runId;
  }

  clearError() {
    this.errorBox.hidden = true;
    this.errorText.textContent = "";
    this.failedRunId = null;
    this.retryLater = null;
    this.retryButton.hidden = true;
  }

  // who: {companion_id, sender} of the reply being written, or null. Only a group names it.
  setSpeaker(who) {
    this.speaker = who && who.sender ? { companion_id: who.companion_id, sender: who.sender } : null;
    if (this.turns) markSpeaking(this.root, this.speaker ? this.speaker.companion_id : null);
  }

  // ---- the bubble a run writes into ----

  // The run's bubble: ``existingId``'s (a reply written again), or a new one, named when the
  // event names a sender ({companion_id, sender}), "typing…" until its first words.
  streamingBubble(runId, who, existingId) {
    const current = this.current;
    if (current && current.id === runId && current.bubble) return current;
    if (current && current.bubble && current.id !== runId) this.finishBubble(null);
    const kind = current && current.id === runId ? current.kind : undefined; // begin() knew it
    let bubble = existingId ? this.chatLog.byId(existingId) : null;
    if (!bubble) {
      // A group's events name the companion answering; a one-to-one chat has only the one.
      const named = who && who.sender ? { id: who.companion_id, name: who.sender } : this.chatLog.companion;
      bubble = this.chatLog.addBubble("assistant", "", { sender: named });
    }
    this.current = { id: runId, bubble: bubble, content: "", points: 0, kind: kind };
    if (existingId) setContent(this.current, rawText(bubble.querySelector(".bubble-text")));
    this.startWriting(bubble, this.current.content);
    return this.current;
  }

  // ``bubble`` is being written (it had ``text`` so far): "Name is typing" until words come. The
  // log holds its announcements (aria-busy) until the reply is whole, so a screen reader hears
  // the finished reply once, not every token.
  startWriting(bubble, text) {
    bubble.classList.add("streaming");
    bubble.classList.remove("incomplete");
    bubble.setAttribute("aria-busy", "true");
    this.chatLog.el.setAttribute("aria-busy", "true");
    if (!text) this.showTyping(bubble);
  }

  showTyping(bubble) {
    if (bubble.querySelector("[data-typing]")) return;
    const nameEl = bubble.querySelector(".sender-name");
    const name = nameEl ? nameEl.textContent : this.chatLog.companion ? this.chatLog.companion.name : "";
    const typing = document.createElement("div");
    typing.className = "typing";
    typing.dataset.typing = "";
    const dots = document.createElement("span");
    dots.className = "typing-dots";
    dots.setAttribute("aria-hidden", "true");
    for (let i = 0; i < 3; i += 1) dots.appendChild(document.createElement("span"));
    const label = document.createElement("span");
    label.className = "typing-label";
    label.textContent = name
      ? interpolate(gettext("%(name)s is typing…"), { name: name }, true)
      : gettext("Typing…");
    typing.append(dots, label);
    bubble.querySelector(".bubble-text").before(typing);
  }

  stopWriting(bubble) {
    const typing = bubble.querySelector("[data-typing]");
    if (typing) typing.remove();
    bubble.classList.remove("streaming");
    bubble.removeAttribute("aria-busy");
    this.chatLog.el.removeAttribute("aria-busy");
  }

  // The reply so far, *actions* styled as the finished reply will show them (the log follows
  // by itself: StickToBottom).
  applyTokens(run, offset, text) {
    if (offset === run.points) {
      run.content += text;
      run.points += Array.from(text).length;
    } else {
      // Overlap with the snapshot, or a restarted reply: the server's text wins from offset on.
      setContent(run, Array.from(run.content).slice(0, offset).join("") + text);
    }
    if (!run.content) return;
    const typing = run.bubble.querySelector("[data-typing]");
    if (typing) typing.remove();
    renderRich(run.bubble.querySelector(".bubble-text"), run.content, true);
  }

  finishBubble(messageId) {
    if (!this.current || !this.current.bubble) return;
    const bubble = this.current.bubble;
    this.stopWriting(bubble);
    renderRich(bubble.querySelector(".bubble-text"), this.current.content);
    if (messageId) {
      bubble.id = "message-" + messageId;
      bubble.dataset.messageId = messageId;
    }
  }

  // ---- events ----

  // A run began: "regenerate" and "continue" stream into the reply they rewrite (``replyId``; this
  // tab's own name none and mean the last one), anything else into a new bubble. ``versions``: how
  // many the rewritten reply has now, when the server said.
  begin(runId, kind, replyId, versions) {
    this.clearError();
    this.turnRunId = runId;
    if (this.current && this.current.id === runId) this.current.kind = kind;
    let reuse = null;
    if (kind === "regenerate" || kind === "continue") {
      reuse = replyId ? this.chatLog.byId(replyId) : this.chatLog.lastOf("assistant");
    } else if (kind === "repaint") {
      reuse = replyId ? this.chatLog.byId(replyId) : null;
      if (reuse) this.chatLog.removePicture(reuse); // the new one comes with "image"
    }
    if (this.current && this.current.id === runId) {
      // A group's "turn.speaker" came first and opened the named bubble already.
      if (kind === "regenerate" && this.current.bubble) this.chatLog.keepOldVersion(this.current.bubble, versions);
      this.showProgress(0, "");
      return;
    }
    if (this.current && this.current.bubble) this.finishBubble(null); // its "done" was lost: not streaming any more
    this.current = { id: runId, bubble: null, content: "", points: 0, kind: kind };
    if (reuse) {
      const keep = kind === "continue" || kind === "repaint" ? rawText(reuse.querySelector(".bubble-text")) : "";
      if (kind === "regenerate") this.chatLog.keepOldVersion(reuse, versions);
      reuse.querySelector(".bubble-text").textContent = keep;
      this.current.bubble = reuse;
      setContent(this.current, keep);
      this.startWriting(reuse, keep);
    }
    // A run of its own shows "typing…" until the first words come; a turn's waits for
    // "turn.speaker" to name who.
    if (!this.current.bubble && !this.turns) this.streamingBubble(runId);
    this.showProgress(0, "");
  }

  // This tab's own run began ("message.accepted"); ``asked``: what takeExpected() gave.
  accepted(runId, asked) {
    this.ownRuns.add(runId);
    const kind = asked && RUN_KINDS.includes(asked.kind) ? asked.kind : "send";
    this.begin(runId, kind, kind === "repaint" ? asked.messageId : null, null);
  }

  // Only the server knows how many versions a rewritten reply keeps.
  setVersions(runId, versions) {
    if (versions && this.current && this.current.id === runId && this.current.bubble) {
      this.current.bubble.dataset.versions = String(versions);
    }
  }

  // "snapshot" / "group.snapshot": the live run (or the last failed one) with all its text so far.
  snapshot(run) {
    if (!run) {
      if (this.current && this.current.bubble) {
        // The reply ended while we missed its last events: the page from the server has all of it.
        location.reload();
        return;
      }
      if (this.current) {
        this.finishBubble(null);
        this.current = null;
      }
      this.turnRunId = null;
      this.setBusy(false);
      return;
    }
    if (run.status === "queued" || run.status === "running") {
      this.setSpeaker(run);
      this.turnRunId = run.id;
      const live = this.streamingBubble(run.id, run, run.message_id);
      this.applyTokens(live, 0, run.content);
      this.showProgress(run.progress, run.step);
    } else if (run.status === "failed") {
      this.setBusy(false);
      this.showError((run.error && run.error.message) || gettext("The reply failed."), run.id);
    }
  }

  // "turn.speaker": a companion is next. A new reply shows "typing…" under the name until the
  // first words come; a reply written again (message_id) streams into its own bubble.
  speakerNext(e) {
    if (e.run_id !== this.turnRunId) this.retryLater = null; // a later reply: the failed one is not the latest
    this.setSpeaker(e);
    this.turnRunId = e.run_id;
    this.streamingBubble(e.run_id, e, e.message_id);
    this.showProgress(0, "");
  }

  // "turn.done", or a run's end where a run is the whole turn. A group's reply that failed is
  // offered again now, when it was the turn's last.
  endTurn() {
    if (this.current && this.current.bubble) this.finishBubble(null);
    this.current = null;
    this.turnRunId = null;
    this.setSpeaker(null);
    this.setBusy(false);
    if (this.retryLater && !this.errorBox.hidden) this.offerRetry(this.retryLater);
    this.retryLater = null;
  }

  progress(e) {
    if (e.step === "done") return;
    this.showProgress(e.progress, e.step, e.percent);
  }

  token(e) {
    this.applyTokens(this.streamingBubble(e.run_id, e), e.offset || 0, e.text);
  }

  image(e) {
    const bubble = (this.current && this.current.bubble) || this.chatLog.byId(e.message_id);
    if (bubble) this.chatLog.addImage(bubble, e.url);
  }

  done(e) {
    // A picture painted again is a run of its own, outside any turn: its "done" ends it.
    const repainting = !!this.current && this.current.kind === "repaint";
    // The stored reply is what counts: text streamed beyond its length (whitespace the server
    // trimmed at the end) goes. What differed inside it came again as a token from that offset.
    if (this.current && this.current.id === e.run_id && typeof e.length === "number" && this.current.points > e.length) {
      setContent(this.current, Array.from(this.current.content).slice(0, e.length).join(""));
    }
    this.finishBubble(e.message_id);
    const bubble = this.chatLog.byId(e.message_id);
    if (bubble) {
      bubble.dataset.finishReason = e.finish_reason || "";
      bubble.classList.remove("incomplete");
      this.chatLog.setReasoning(bubble, e.reasoning || "");
    }
    this.current = null;
    if (!this.turns || repainting) this.endTurn(); // a group's turn goes on until "turn.done"
  }

  // An "error" with a run_id: the run failed or was cancelled.
  failed(e) {
    if (e.code === "image_failed") {
      this.showError(e.message, null);
      return;
    }
    // A picture painted again that stopped: the reply's text is whole, and a retry would rewrite it.
    const repainting = !!this.current && this.current.kind === "repaint";
    this.finishBubble(null);
    if (this.current && this.current.bubble && !repainting) {
      if (!this.current.content) this.current.bubble.remove(); // nothing was written: no empty bubble
      else this.current.bubble.classList.add("incomplete");
    }
    this.current = null;
    const message = this.turns && e.sender ? speakerSays(e.sender, e.message) : e.message;
    if (this.turns && !repainting) {
      // The next companion goes on; "turn.done" ends the turn, and Retry is offered then if
      // this reply is still the latest (the server retries only the latest).
      this.showError(message, null);
      this.retryLater = e.run_id;
      return;
    }
    this.endTurn();
    this.showError(message, repainting ? null : e.run_id);
  }
}

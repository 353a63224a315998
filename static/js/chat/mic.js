/* global gettext, ngettext, interpolate */
// Push-to-talk in the message box: record with the browser's MediaRecorder, upload the recording
// to the composer's data-transcribe-url (POST, field "audio"), and put the words that come back in
// the message box to send or edit ("Send at once", remembered in this browser, sends them).
//
// The microphone button toggles: a click, or Space / Enter when it has focus, starts recording
// and the next one stops it. On a touch screen, holding it down records until it is let go; a
// short tap toggles like a click. Recording stops by itself after data-max-seconds. The state is
// announced (aria-pressed, and a live status line with the time); every failure says, in plain
// words, what happened and what to do. Browsers without MediaRecorder or a microphone API never
// see the button.

import { csrfToken } from "./voice.js";

const SEND_AT_ONCE_KEY = "companionhub.voice.sendAtOnce";
const HOLD_MS = 400; // a touch held longer than this records only while held
// Asked for in this order; the server sniffs the type, so any of them is fine.
const TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];

export function micSupported() {
  return (
    typeof window.MediaRecorder === "function" &&
    !!navigator.mediaDevices &&
    typeof navigator.mediaDevices.getUserMedia === "function"
  );
}

function recordingType() {
  if (typeof MediaRecorder.isTypeSupported !== "function") return "";
  return TYPES.find((type) => MediaRecorder.isTypeSupported(type)) || "";
}

function extensionOf(type) {
  if (type.includes("ogg")) return "ogg";
  if (type.includes("mp4")) return "m4a";
  return "webm";
}

// m:ss, in the page's digits.
function clock(seconds) {
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return m + ":" + String(s).padStart(2, "0");
}

// Why getUserMedia or MediaRecorder failed, in words a person can act on.
function microphoneProblem(error) {
  const name = error && error.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return gettext(
      "The browser was not allowed to use the microphone. Allow it for this site (the icon beside the address), then try again.",
    );
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return gettext("No microphone was found. Plug one in, or check that it is switched on, then try again.");
  }
  if (name === "NotReadableError" || name === "AbortError") {
    return gettext("The microphone is in use by another program, or cannot be read. Close that program and try again.");
  }
  return gettext("Recording could not start in this browser.");
}

// The server's answer to an upload that failed, in plain words (its own "error" when it gave one).
function uploadProblem(status, body) {
  if (body && typeof body.error === "string" && body.error) return body.error;
  if (status === 413) return gettext("The recording is too long. Keep it under two minutes.");
  if (status === 415) return gettext("The recording's format is not supported.");
  if (status === 429) return gettext("Too many recordings in a short time. Wait a moment and try again.");
  if (status === 503) return gettext("Speech recognition is not available right now. Type your message instead.");
  return gettext("The recording could not be turned into text. Try again, or type your message.");
}

export class PushToTalk {
  // form: the composer's form (with data-transcribe-url); root: the page's .chat section.
  constructor(root, form) {
    this.root = root;
    this.form = form;
    this.textarea = form.querySelector("textarea");
    this.box = form.querySelector("[data-mic-box]");
    this.button = form.querySelector("[data-mic]");
    this.status = form.querySelector("[data-mic-status]");
    this.sendAtOnce = form.querySelector("[data-mic-send]");
    this.url = form.dataset.transcribeUrl;
    this.conversationId = root.dataset.conversationId;
    this.maxSeconds = parseInt(form.dataset.transcribeMaxSeconds || "120", 10);
    this.recorder = null;
    this.stream = null;
    this.chunks = [];
    this.seconds = 0;
    this.timer = null;
    this.pressedAt = 0; // a touch press began (ms); 0 when none
    this.starting = false; // waiting for the browser's microphone prompt
    this.uploading = false;

    if (!this.box || !this.button || !this.url || !micSupported()) return; // stays hidden
    this.box.hidden = false;
    if (this.sendAtOnce) {
      this.sendAtOnce.checked = this.remembered();
      this.sendAtOnce.addEventListener("change", () => this.remember(this.sendAtOnce.checked));
    }
    // A click, or Space / Enter on the focused button (a button's own keyboard behaviour).
    this.button.addEventListener("click", (event) => {
      if (this.touchHandled) {
        this.touchHandled = false;
        event.preventDefault();
        return;
      }
      this.toggle();
    });
    this.button.addEventListener("pointerdown", (event) => this.touchStart(event));
    this.button.addEventListener("pointerup", (event) => this.touchEnd(event));
    this.button.addEventListener("pointercancel", (event) => this.touchEnd(event));
    this.button.addEventListener("contextmenu", (event) => event.preventDefault()); // a long press is ours
  }

  get recording() {
    return !!this.recorder && this.recorder.state === "recording";
  }

  remembered() {
    try {
      return window.localStorage.getItem(SEND_AT_ONCE_KEY) === "1";
    } catch {
      return false;
    }
  }

  remember(on) {
    try {
      window.localStorage.setItem(SEND_AT_ONCE_KEY, on ? "1" : "0");
    } catch {
      // Private windows may refuse storage: the box works for this page.
    }
  }

  toggle() {
    if (this.recording) this.stop();
    else this.start();
  }

  // Touch and pen: hold to record, or tap to toggle. The click that follows is ours already.
  touchStart(event) {
    if (event.pointerType === "mouse") return;
    this.touchHandled = true;
    if (this.recording) {
      this.stop();
      return;
    }
    this.pressedAt = Date.now();
    this.start();
  }

  touchEnd(event) {
    if (event.pointerType === "mouse" || !this.pressedAt) return;
    const held = Date.now() - this.pressedAt;
    this.pressedAt = 0;
    if (held >= HOLD_MS && (this.recording || this.starting)) this.stopWhenStarted = true;
    if (held >= HOLD_MS && this.recording) this.stop();
  }

  async start() {
    if (this.starting || this.uploading) return;
    this.starting = true;
    this.stopWhenStarted = false;
    this.say(gettext("Waiting for the microphone… (your browser may ask you to allow it)"), false);
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      this.starting = false;
      this.say(microphoneProblem(error), true);
      return;
    }
    const type = recordingType();
    let recorder;
    try {
      recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    } catch (error) {
      stream.getTracks().forEach((track) => track.stop());
      this.starting = false;
      this.say(microphoneProblem(error), true);
      return;
    }
    this.stream = stream;
    this.recorder = recorder;
    this.chunks = [];
    recorder.addEventListener("dataavailable", (event) => {
      if (event.data && event.data.size) this.chunks.push(event.data);
    });
    recorder.addEventListener("stop", () => this.finished(recorder.mimeType || type || "audio/webm"));
    recorder.start();
    this.starting = false;
    this.seconds = 0;
    this.showRecording(true);
    this.timer = window.setInterval(() => this.tick(), 1000);
    if (this.stopWhenStarted) this.stop(); // the finger left while the browser was asking
  }

  tick() {
    this.seconds += 1;
    this.sayTime();
    if (this.seconds >= this.maxSeconds) {
      this.stop();
      this.say(
        interpolate(gettext("Stopped at the limit of %(time)s. Turning it into text…"), { time: clock(this.maxSeconds) }, true),
        false,
      );
    }
  }

  stop() {
    if (!this.recording) return;
    this.recorder.stop(); // "stop" follows, with the last data
  }

  showRecording(on) {
    this.button.setAttribute("aria-pressed", on ? "true" : "false");
    this.button.classList.toggle("recording", on);
    const label = on ? gettext("Stop recording") : gettext("Record a voice message");
    this.button.setAttribute("aria-label", label);
    this.button.title = label;
    if (on) this.sayTime();
  }

  sayTime() {
    this.say(
      interpolate(gettext("Recording… %(time)s (press again to stop)"), { time: clock(this.seconds) }, true),
      false,
    );
  }

  say(text, problem) {
    this.status.textContent = text;
    this.status.classList.toggle("error", !!problem);
  }

  async finished(type) {
    window.clearInterval(this.timer);
    this.timer = null;
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    this.stream = null;
    this.recorder = null;
    this.showRecording(false);
    const blob = new Blob(this.chunks, { type: type });
    this.chunks = [];
    if (!blob.size) {
      this.say(gettext("Nothing was recorded. Try again."), true);
      return;
    }
    if (this.seconds < this.maxSeconds) this.say(gettext("Turning your words into text…"), false);
    await this.upload(blob, type);
  }

  async upload(blob, type) {
    this.uploading = true;
    this.button.disabled = true;
    const body = new FormData();
    body.append("audio", blob, "speech." + extensionOf(type));
    if (this.conversationId) body.append("conversation_id", this.conversationId);
    let response = null;
    let answer = {};
    try {
      response = await fetch(this.url, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(this.root), Accept: "application/json" },
      });
      answer = await response.json().catch(() => ({}));
    } catch {
      response = null;
    } finally {
      this.uploading = false;
      this.button.disabled = false;
    }
    if (!response) {
      this.say(gettext("Could not reach the server. Check the connection and try again."), true);
      return;
    }
    if (!response.ok || typeof answer.text !== "string") {
      this.say(uploadProblem(response.status, answer), true);
      return;
    }
    const text = answer.text.trim();
    if (!text) {
      this.say(gettext("No words were heard. Try again, closer to the microphone."), true);
      return;
    }
    this.insert(text);
  }

  // The words go where the user is writing: after what is typed already.
  insert(text) {
    const typed = this.textarea.value;
    this.textarea.value = typed && !/\s$/.test(typed) ? typed + " " + text : typed + text;
    this.textarea.dispatchEvent(new Event("input", { bubbles: true }));
    const send = this.form.querySelector("[data-send]");
    if (this.sendAtOnce && this.sendAtOnce.checked && !(send && send.disabled)) {
      this.say(gettext("Sent."), false);
      this.form.requestSubmit();
      return;
    }
    this.say(gettext("Your words are in the message box: edit them, or press Send."), false);
    this.textarea.focus();
  }
}

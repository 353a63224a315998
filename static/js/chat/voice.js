/* global gettext, ngettext, interpolate */
// Replies read aloud (docs/websocket.md, "Voice"). The server cuts a reply into sentences and
// sends one "audio" event per clip, in any order; this module plays one reply's clips in `index`
// order, each starting the moment the one before ends (the next is already loaded), from the
// moment index 0 is here. One reply at a time: a reply that starts speaking stops the one before.
//
// Live replies (their events carry a run_id) play by themselves when "Read replies aloud" is on
// (the page's data-read-aloud); the Listen button on every reply always works: it replays the
// clips this page has, else asks the server for them (GET …/audio/), else has them made
// (POST …/speak/, whose clips come as "audio" events with no run_id).
//
// Each clip is a real <audio class="voice-clip"> in the page, and window.companionVoice shows
// the queue, the index playing and the indexes played, so tests (and curious people) can check.

// A same-site path: a clip URL never sends the page elsewhere.
function sitePath(url) {
  return typeof url === "string" && url.startsWith("/") && !url.startsWith("//") ? url : null;
}

function whole(value) {
  return Number.isInteger(value) && value >= 0;
}

// The CSRF token of the page's forms (the composer has one).
export function csrfToken(root) {
  const input = root.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

export class VoicePlayer {
  // root: the page's .chat section; chatLog: the ChatLog (finds a reply's bubble by id);
  // bubbleOfRun(runId): the bubble a run streams into before it has an id, or null.
  constructor(root, { chatLog, bubbleOfRun }) {
    this.root = root;
    this.chatLog = chatLog;
    this.bubbleOfRun = bubbleOfRun;
    this.messagesUrl = root.dataset.messagesUrl || "";
    this.autoplay = root.dataset.readAloud !== "off";
    this.shelf = root.querySelector("[data-voice-clips]"); // where the <audio> elements live
    this.unlockBox = root.querySelector("[data-voice-unlock]");
    this.replies = new Map(); // message id -> reply (see reply())
    this.current = null; // the reply playing, or waiting for its next clip
    this.blocked = false; // the browser refused to play before a click on the page
    if (this.unlockBox) {
      this.unlockBox.querySelector("button").addEventListener("click", () => this.unlock());
    }
    window.companionVoice = this.inspect();
  }

  // What tests read: live views of the player's state.
  inspect() {
    const player = this;
    return {
      get messageId() {
        return player.current ? player.current.id : null;
      },
      get queue() {
        return player.current ? [...player.current.clips.keys()].sort((a, b) => a - b) : [];
      },
      get index() {
        return player.current ? player.current.playing : null;
      },
      get played() {
        return player.current ? [...player.current.played] : [];
      },
      get blocked() {
        return player.blocked;
      },
      get autoplay() {
        return player.autoplay;
      },
      playedOf(messageId) {
        const reply = player.replies.get(Number(messageId));
        return reply ? [...reply.played] : [];
      },
    };
  }

  reply(messageId) {
    let reply = this.replies.get(messageId);
    if (!reply) {
      reply = {
        id: messageId,
        clips: new Map(), // index -> {url, durationMs, el}
        last: null, // the final clip's index, once known
        next: 0, // the index to play next
        playing: null, // the index playing now
        played: [], // indexes in the order they finished
        wanted: false, // to be played (the button, or a live reply read aloud)
        stopped: false, // the user stopped it: a live reply's later clips stay quiet
        failed: false, // the server could not make all of its clips
        preparing: false, // asked the server for clips that are not here yet
        refilling: false, // asking the server for clips whose events were lost
        runId: null, // the run whose clips these are (a live reply's)
      };
      this.replies.set(messageId, reply);
    }
    return reply;
  }

  // ---- events ----

  // "audio": one clip of a reply.
  audio(e) {
    const url = sitePath(e.url);
    if (!whole(e.message_id) || !whole(e.index) || !url) return;
    // A reply written again ("Again") keeps its message id: a new run's clips replace the old ones.
    const known = this.replies.get(e.message_id);
    if (e.run_id && known && known.runId && known.runId !== e.run_id) this.forget(e.message_id);
    const reply = this.reply(e.message_id);
    if (e.run_id) reply.runId = e.run_id;
    this.addClip(reply, e.index, url, e.duration_ms, !!e.last);
    // A reply being written is read aloud when the user wants that (and did not stop it).
    if (e.run_id && this.autoplay && !reply.stopped && !reply.wanted) this.start(reply);
    else if (reply.wanted && this.current !== reply) this.start(reply);
    this.advance(reply);
  }

  // "error" with code audio_failed: the reply stays text only; say so on it.
  failed(e) {
    if (!whole(e.message_id)) return;
    const reply = this.reply(e.message_id);
    reply.failed = true;
    reply.preparing = false;
    const bubble = this.chatLog.byId(e.message_id) || (e.run_id ? this.bubbleOfRun(e.run_id) : null);
    if (bubble) this.note(bubble, gettext("Voice unavailable: text only."));
    this.advance(reply);
    this.showButton(reply);
  }

  // ---- the Listen button ----

  // A click on a reply's Listen / Stop.
  toggle(bubble) {
    const id = parseInt(bubble.dataset.messageId, 10);
    if (!whole(id)) return;
    const reply = this.reply(id);
    if (this.current === reply) {
      this.stop();
      return;
    }
    this.clearNote(bubble);
    reply.stopped = false;
    reply.failed = false;
    if (reply.clips.size) {
      this.restart(reply);
      this.start(reply);
      this.advance(reply);
      return;
    }
    this.start(reply);
    this.fetchClips(reply, bubble);
  }

  // The clips the server has (a reload forgot them), else have them made.
  async fetchClips(reply, bubble) {
    reply.preparing = true;
    this.showButton(reply);
    try {
      const have = await this.request(`${this.messagesUrl}${reply.id}/audio/`, { method: "GET" });
      const clips = Array.isArray(have.clips) ? have.clips : [];
      if (clips.length) {
        const lastIndex = Math.max(...clips.map((c) => c.index));
        for (const c of clips) {
          const url = sitePath(c.url);
          if (url && whole(c.index)) this.addClip(reply, c.index, url, c.duration_ms, c.index === lastIndex);
        }
      } else {
        const made = await this.request(`${this.messagesUrl}${reply.id}/speak/`, {
          method: "POST",
          headers: { "X-CSRFToken": csrfToken(this.root) },
        });
        if (Array.isArray(made.clips)) {
          made.clips.forEach((url, index) => {
            if (sitePath(url)) this.addClip(reply, index, sitePath(url), null, index === made.clips.length - 1);
          });
        }
        // {"queued": n}: the clips come as "audio" events.
      }
      reply.preparing = reply.clips.size === 0;
      this.advance(reply);
    } catch (error) {
      reply.preparing = false;
      if (this.current === reply) this.stop();
      this.note(bubble, error.message);
    }
    this.showButton(reply);
  }

  // JSON from the site; an Error with the server's words (or plain ones) when it refuses.
  async request(url, options) {
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, ...options });
    } catch {
      throw new Error(gettext("Could not reach the server for the voice. Try again."));
    }
    let body = {};
    try {
      body = await response.json();
    } catch {
      body = {};
    }
    if (!response.ok) {
      throw new Error(typeof body.error === "string" && body.error ? body.error : gettext("The voice is not available for this reply."));
    }
    return body;
  }

  // ---- playback ----

  addClip(reply, index, url, durationMs, last) {
    if (last) reply.last = index;
    if (reply.clips.has(index)) return;
    const el = document.createElement("audio");
    el.className = "voice-clip";
    el.dataset.index = String(index);
    el.dataset.messageId = String(reply.id);
    el.preload = "auto"; // loaded before its turn: the next clip starts without a gap
    el.src = url;
    el.addEventListener("ended", () => this.clipEnded(reply, index));
    el.addEventListener("error", () => this.clipEnded(reply, index)); // a broken clip is skipped
    if (this.shelf) this.shelf.appendChild(el);
    reply.clips.set(index, { url, durationMs: whole(durationMs) ? durationMs : null, el });
    // A clip lost on the way (the channel layer may drop an event): the server has the list.
    if (reply.last !== null && reply.clips.size <= reply.last && !reply.refilling) this.refill(reply);
  }

  async refill(reply) {
    reply.refilling = true;
    try {
      const have = await this.request(`${this.messagesUrl}${reply.id}/audio/`, { method: "GET" });
      for (const c of Array.isArray(have.clips) ? have.clips : []) {
        const url = sitePath(c.url);
        if (url && whole(c.index)) this.addClip(reply, c.index, url, c.duration_ms, c.index === reply.last);
      }
      this.advance(reply);
    } catch {
      // Played as far as it goes.
    }
  }

  // ``reply`` is the one to play now: the one before stops.
  start(reply) {
    if (this.current && this.current !== reply) this.stop();
    reply.wanted = true;
    this.current = reply;
    this.showButton(reply);
  }

  // Play again from the start.
  restart(reply) {
    for (const clip of reply.clips.values()) {
      clip.el.pause();
      clip.el.currentTime = 0;
    }
    reply.next = 0;
    reply.playing = null;
    reply.played = [];
  }

  // Plays the reply's next clip when it is here and nothing of it is playing.
  advance(reply) {
    if (this.current !== reply || reply.playing !== null) return;
    if (reply.last !== null && reply.next > reply.last) {
      this.finish(reply);
      return;
    }
    const clip = reply.clips.get(reply.next);
    if (!clip) {
      if (reply.failed && !reply.preparing) this.finish(reply); // the rest will not come
      return;
    }
    reply.playing = reply.next;
    this.play(clip.el);
  }

  play(el) {
    const started = el.play();
    if (started && typeof started.catch === "function") {
      started.then(
        () => this.setBlocked(false),
        (error) => {
          // Browsers refuse sound until the page has been clicked: ask for that click.
          if (error && error.name === "NotAllowedError") this.setBlocked(true);
        },
      );
    }
  }

  clipEnded(reply, index) {
    if (reply.playing !== index) return;
    reply.played.push(index);
    reply.playing = null;
    reply.next = index + 1;
    this.advance(reply);
  }

  finish(reply) {
    if (this.current === reply) this.current = null;
    reply.playing = null;
    reply.wanted = false;
    this.showButton(reply);
  }

  // Stops what is playing; the reply's later clips (a live reply's) stay quiet until Listen.
  stop() {
    const reply = this.current;
    if (!reply) return;
    if (reply.playing !== null) {
      const clip = reply.clips.get(reply.playing);
      if (clip) clip.el.pause();
    }
    reply.stopped = true;
    reply.playing = null;
    reply.wanted = false;
    this.current = null;
    this.setBlocked(false);
    this.showButton(reply);
  }

  // The click the browser waited for: play what was refused.
  unlock() {
    this.setBlocked(false);
    const reply = this.current;
    if (!reply || reply.playing === null) return;
    const clip = reply.clips.get(reply.playing);
    if (clip) this.play(clip.el);
  }

  setBlocked(blocked) {
    this.blocked = blocked;
    if (this.unlockBox) this.unlockBox.hidden = !blocked;
  }

  // ---- on the reply ----

  // The reply's Listen button shows whether it is playing (aria-pressed) and what a click does.
  showButton(reply) {
    const bubble = this.chatLog.byId(reply.id);
    const button = bubble && bubble.querySelector('.bubble-action[data-action="listen"]');
    if (!button) return;
    const on = this.current === reply;
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? gettext("Stop") : gettext("Listen");
    const title = on ? gettext("Stop reading this reply aloud") : gettext("Read this reply aloud");
    button.title = title;
    button.setAttribute("aria-label", title);
    bubble.classList.toggle("speaking", on);
    button.classList.toggle("busy", on && reply.preparing);
  }

  // A deleted message's clips go with it, and so do a changed message's (they say the old text).
  forget(messageId) {
    const reply = this.replies.get(messageId);
    if (!reply) return;
    if (this.current === reply) this.stop();
    for (const clip of reply.clips.values()) clip.el.remove();
    this.replies.delete(messageId);
  }

  // Every reply's button as its state is (a reply gets its id and its button once written).
  showButtons() {
    for (const reply of this.replies.values()) this.showButton(reply);
  }

  note(bubble, text) {
    let el = bubble.querySelector(":scope > [data-voice-note]");
    if (!el) {
      el = document.createElement("p");
      el.className = "voice-note small muted";
      el.dataset.voiceNote = "";
      el.setAttribute("role", "status");
      const time = bubble.querySelector(":scope > time");
      if (time) time.before(el);
      else bubble.appendChild(el);
    }
    el.textContent = text;
  }

  clearNote(bubble) {
    const el = bubble.querySelector(":scope > [data-voice-note]");
    if (el) el.remove();
  }
}

/* global gettext, ngettext, interpolate */
// The chat page's client, for every conversation (one-to-one and group): one websocket to
// data-ws-path, the protocol in docs/websocket.md. This module reads the page, builds the parts
// (socket.js, render.js, run.js, composer.js), and says which part each server event and each
// click on a message goes to.
//
// Every conversation offers the same: send, stop, Retry, write the last reply again or carry it
// on, flip versions, edit any message (your last one also answered afresh), branch, delete, and
// a picture's buttons. What differs is data: a group page (data-mode="group") has several
// companions answer each message in turn, each reply named by its sender, until "turn.done".

import { Composer } from "./composer.js";
import { PushToTalk } from "./mic.js";
import { ChatLog, messageIdOf, showHeader, updateState } from "./render.js";
import { SidePanel } from "./panel.js";
import { RunView, readStepLabels } from "./run.js";
import { ChatSocket } from "./socket.js";
import { VoicePlayer } from "./voice.js";

function start(root) {
  const page = {
    turns: root.dataset.mode === "group", // several companions answer a message, each named
  };

  const socket = new ChatSocket(root.dataset.wsPath, {
    statusEl: root.querySelector("[data-connection]"),
    root: root,
    waiting: () => run.isWriting(),
    // An answer that never came; the snapshot on reconnect says where things are.
    onClose: () => run.takeExpected(),
  });
  const send = (frame) => socket.send(frame);
  const chatLog = new ChatLog(root);
  const run = new RunView(root, {
    chatLog,
    send,
    turns: page.turns,
    labels: readStepLabels(),
    onBusy: (busy) => {
      composer.setBusy(busy);
      refresh();
    },
  });
  const composer = new Composer(root, { socket, chatLog, run });
  const voice = new VoicePlayer(root, {
    chatLog,
    bubbleOfRun: (runId) => (run.current && run.current.id === runId ? run.current.bubble : null),
  });
  new PushToTalk(root, composer.form);
  new SidePanel(root);
  // Which actions the page offers follows from the log and whether a turn is being answered.
  const refresh = () => {
    const busy = run.isBusy();
    chatLog.refreshActions(busy);
    composer.showContinue(!busy && chatLog.cutReply() !== null);
    voice.showButtons();
  };

  // What a click on a message asks the server for.
  let branches = 0; // counts this tab's "Branch here" clicks, for their client_id
  chatLog.listen({
    message(action, li) {
      const id = messageIdOf(li);
      if (action === "edit") composer.startEdit(li);
      else if (action === "delete") send({ type: "message.delete", message_id: id });
      else if (action === "regenerate" && send({ type: "message.regenerate", message_id: id })) {
        run.expect("regenerate");
      } else if (action === "version") send({ type: "message.alternative", message_id: id });
      else if (action === "listen") voice.toggle(li);
      else if (action === "branch") {
        branches += 1;
        const clientId = "b" + Date.now() + "-" + branches;
        if (send({ type: "conversation.branch", message_id: id, client_id: clientId })) {
          run.expect("branch", id, clientId);
        }
      }
    },
    picture(action, id) {
      if (!send({ type: action, message_id: id })) return;
      if (action === "picture.repaint") run.expect("repaint", id);
    },
    paged: refresh,
  });

  // A link to one message (a search result, a branch's origin): reveal it, else the newest.
  const asks = { paged: refresh };
  const target = messageInHash();
  if (target) chatLog.reveal(target, asks);
  else chatLog.scrollToEnd();
  window.addEventListener("hashchange", () => {
    const id = messageInHash();
    if (id) chatLog.reveal(id, asks);
  });
  refresh();
  socket.start(eventHandlers(root, { page, chatLog, run, composer, voice, refresh }));
}

// The message id in the address's #message-<id>, or null.
function messageInHash() {
  const found = /^#message-(\d{1,19})$/.exec(location.hash);
  return found ? found[1] : null;
}

// A same-site page path (the server's "url" of a branch), or null.
function sitePath(url) {
  return typeof url === "string" && url.startsWith("/") && !url.startsWith("//") ? url : null;
}

// Each server event (docs/websocket.md, "Server → client") to the part it concerns.
function eventHandlers(root, { page, chatLog, run, composer, voice, refresh }) {
  return {
    snapshot(e) {
      updateState(root, e.companion.state);
      run.snapshot(e.run);
    },
    "group.snapshot"(e) {
      for (const c of e.group.companions) updateState(root, c.state, c.id);
      run.setSpeaker(e.speaking);
      run.snapshot(e.run);
    },
    "turn.speaker": (e) => run.speakerNext(e),
    "turn.done": () => run.endTurn(),
    "message.accepted"(e) {
      composer.accepted(e.client_id, e.message_id);
      const asked = run.takeExpected();
      if (asked && asked.kind === "edit") chatLog.showEdited(e.message_id, composer.sentEditText());
      run.accepted(e.run_id, asked);
    },
    // A run another tab, device or the plain form started; this tab's own came as "message.accepted",
    // which its socket always gets first.
    "turn.started"(e) {
      if (run.isOwn(e.run_id)) {
        run.setVersions(e.run_id, e.versions);
        return;
      }
      const said = e.user_message;
      // Your last message being edited here to be answered afresh may no longer be the last one.
      let editGone = composer.resending && (e.kind === "send" || e.kind === "edit");
      if (e.kind === "send" && !chatLog.byId(said.id)) {
        chatLog.addBubble("user", said.content, { id: said.id, date: new Date(said.created_at) });
      } else if (e.kind === "edit") {
        chatLog.showEdited(said.id, said.content);
      } else if (e.kind === "retry") {
        chatLog.removeStaleReply(); // the failed attempt's partial reply is gone
      }
      editGone = editGone || (composer.editing && !composer.editedBubbleOnPage());
      // Keep the draft, leave edit mode.
      if (editGone) composer.stopEdit();
      run.begin(e.run_id, e.kind, e.reply_id, e.versions);
      if (editGone) {
        run.showError(
          gettext(
            "The message you were editing changed in another tab. Your text is still here: send it as a new message, or edit again.",
          ),
          null,
        );
      }
    },
    progress: (e) => run.progress(e),
    token: (e) => run.token(e),
    state: (e) => updateState(root, e, e.companion_id),
    image: (e) => run.image(e),
    done: (e) => run.done(e),
    "message.deleted"(e) {
      voice.forget(e.message_id);
      chatLog.remove(e.message_id);
      if (composer.editing && !composer.editedBubbleOnPage()) {
        composer.stopEdit();
        run.showError(gettext("The message you were editing was deleted. Your text is still here."), null);
      }
      refresh();
    },
    "picture.removed"(e) {
      const bubble = chatLog.byId(e.message_id);
      if (bubble) chatLog.removePicture(bubble);
    },
    "companion.header"(e) {
      // The event names whose header changed: in a group, that companion's avatar.
      if (!page.turns) showHeader(root, e.url);
      else showHeader(root, e.url, e.companion_id);
    },
    "message.updated"(e) {
      // New words (corrected, or another version shown): the server dropped the old clips.
      voice.forget(e.message_id);
      if (e.edited) run.takeExpectedIf("correct", e.message_id);
      if (chatLog.showVersion(e.message_id, e.content, e.versions, !!e.edited)) refresh();
    },
    "conversation.branched"(e) {
      const asked = run.takeExpectedIf("branch");
      const url = sitePath(e.url);
      if (asked && asked.extra === e.client_id && url) location.assign(url);
    },
    audio: (e) => voice.audio(e),
    error(e) {
      // A reply that could not be read aloud is still a whole reply: a note on it, nothing more.
      if (e.code === "audio_failed") {
        voice.failed(e);
        return;
      }
      if (e.run_id) {
        run.failed(e);
        return;
      }
      // A refused frame: give the text back so nothing typed is lost.
      const asked = run.takeExpected();
      composer.refused(asked && (asked.kind === "edit" || asked.kind === "correct") ? asked.kind : null);
      let message = e.message;
      if (e.retry_after) {
        const seconds = new Intl.NumberFormat(document.documentElement.lang || undefined).format(e.retry_after);
        message = interpolate(gettext("%(message)s (try again in %(seconds)s s)"), { message, seconds }, true);
      }
      run.showError(message, null);
      if (!run.current) run.setBusy(false);
    },
    pong() {},
  };
}

const root = document.querySelector(".chat[data-ws-path]");
if (root) start(root);

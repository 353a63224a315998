// The chat page's client, for both chat pages: one websocket, the protocol in docs/websocket.md.
// This module reads the page, builds the parts (socket.js, render.js, run.js, composer.js), and
// says which part each server event and each click on a message goes to.
//
// A group chat page (data-mode="group") differs only in the data below: its replies come one
// companion after another, each bubble named by its event's sender, until "turn.done"; the latest
// reply can be written again or continued, its versions flipped and any message deleted in both;
// editing your last message, Retry and the picture buttons are one-to-one only.

import { Composer } from "./composer.js";
import { ChatLog, messageIdOf, showHeader, updateState } from "./render.js";
import { RunView, readStepLabels } from "./run.js";
import { ChatSocket } from "./socket.js";

function start(root) {
  const group = root.dataset.mode === "group";
  const page = {
    turns: group, // several runs answer one message; "turn.done" ends them
    retry: !group, // the server takes "run.retry"
    pictureControls: !group, // a reply's picture can be painted again, made the header, deleted
    editLastMessage: !group, // "message.edit"
  };

  const socket = new ChatSocket(root.dataset.wsPath, {
    statusEl: root.querySelector("[data-connection]"),
    root: root,
    waiting: () => run.isWriting(),
    // An answer that never came; the snapshot on reconnect says where things are.
    onClose: () => run.takeExpected(),
  });
  const send = (frame) => socket.send(frame);
  const chatLog = new ChatLog(root, page);
  const run = new RunView(root, {
    chatLog,
    send,
    turns: page.turns,
    retry: page.retry,
    labels: readStepLabels(),
    onBusy: (busy) => {
      composer.setBusy(busy);
      refresh();
    },
  });
  const composer = new Composer(root, { socket, chatLog, run });
  // Which actions the page offers follows from the log and whether a turn is being answered.
  const refresh = () => {
    const busy = run.isBusy();
    chatLog.refreshActions(busy);
    composer.showContinue(!busy && chatLog.cutReply() !== null);
  };

  // What a click on a message asks the server for.
  chatLog.listen({
    message(action, li) {
      const id = messageIdOf(li);
      if (action === "edit") composer.startEdit(li);
      else if (action === "delete") send({ type: "message.delete", message_id: id });
      else if (action === "regenerate" && send({ type: "message.regenerate", message_id: id })) {
        run.expect("regenerate");
      } else if (action === "version") send({ type: "message.alternative", message_id: id });
    },
    picture(action, id) {
      if (send({ type: action, message_id: id }) && action === "picture.repaint") run.expect("repaint", id);
    },
    paged: refresh,
  });

  chatLog.scrollToEnd();
  refresh();
  socket.start(eventHandlers(root, { chatLog, run, composer, refresh }));
}

// Each server event (docs/websocket.md, "Server → client") to the part it concerns.
function eventHandlers(root, { chatLog, run, composer, refresh }) {
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
      if (asked && asked.kind === "edit") chatLog.showEdited(e.message_id, composer.sentEdit);
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
      // The message being edited here may no longer be the last one: keep the draft, leave edit mode.
      const editGone = composer.editing && (e.kind === "send" || e.kind === "edit");
      if (editGone) composer.stopEdit();
      if (e.kind === "send" && !chatLog.byId(said.id)) {
        chatLog.addBubble("user", said.content, { id: said.id, date: new Date(said.created_at) });
      } else if (e.kind === "edit") {
        chatLog.showEdited(said.id, said.content);
      } else if (e.kind === "retry") {
        chatLog.showEdited(said.id, null); // the failed attempt's partial reply is gone
      }
      run.begin(e.run_id, e.kind, e.reply_id, e.versions);
      if (editGone) {
        run.showError(
          "Your last message changed in another tab. Your text is still here: send it as a new message, or edit again.",
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
      chatLog.remove(e.message_id);
      refresh();
    },
    "picture.removed"(e) {
      const bubble = chatLog.byId(e.message_id);
      if (bubble) chatLog.removePicture(bubble);
    },
    "companion.header": (e) => showHeader(root, e.url),
    "message.updated"(e) {
      if (chatLog.showVersion(e.message_id, e.content, e.versions)) refresh();
    },
    error(e) {
      if (e.run_id) {
        run.failed(e);
        return;
      }
      // A refused frame: give the text back so nothing typed is lost.
      const asked = run.takeExpected();
      composer.refused(!!asked && asked.kind === "edit");
      let message = e.message;
      if (e.retry_after) message += " (try again in " + e.retry_after + " s)";
      run.showError(message, null);
      if (!run.current) run.setBusy(false);
    },
    pong() {},
  };
}

const root = document.querySelector(".chat[data-ws-path]");
if (root) start(root);

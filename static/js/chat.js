// The chat page's client: one websocket, the protocol in docs/websocket.md.
// Untrusted text (user and model) only ever reaches the page through
// textContent; *emphasis* becomes <em> elements built node by node.
// A group chat page (data-mode="group") uses the same client: replies come
// one companion after another, each bubble named, until "turn.done"; older
// pages load the same way, from the page's data-older-url; the latest reply
// can be written again or continued, its versions flipped and any message
// deleted (editing your last message is 1:1 only).
(function () {
  "use strict";

  var root = document.querySelector(".chat[data-ws-path]");
  if (!root) return;

  var log = root.querySelector("[data-log]");
  var composer = root.querySelector("[data-composer]");
  var textarea = composer.querySelector("textarea");
  var wantImage = composer.querySelector("[data-want-image]");
  var sendButton = composer.querySelector("[data-send]");
  var runBox = root.querySelector("[data-run]");
  var bar = root.querySelector("[data-progress-bar]");
  var progressEl = runBox.querySelector("[role=progressbar]");
  var stepEl = root.querySelector("[data-step]");
  var cancelButton = root.querySelector("[data-cancel]");
  var errorBox = root.querySelector("[data-error]");
  var errorText = root.querySelector("[data-error-text]");
  var retryButton = root.querySelector("[data-retry]");
  var connectionEl = root.querySelector("[data-connection]");
  var lightbox = root.querySelector("[data-lightbox]");
  var isGroup = root.dataset.mode === "group";
  var speaker = null; // group chats: {companion_id, sender} of the reply being written
  var lastRunId = null; // group chats: the stop button stops the turn, between replies too

  var STEPS = {
    analyze_context: "Reading your message…",
    generate_reply: "Writing…",
    reanalyze: "Thinking about the scene…",
    update_state: "Updating the scene…",
    generate_image: "Painting a picture…",
    done: "Done"
  };

  var socket = null;
  var attempt = 0;
  var lastEventAt = Date.now();
  // The channel layer delivers at most once: if a reply goes quiet, reconnect and let the snapshot
  // (read from the database) say where it stands.
  var QUIET_MS = 30000;
  setInterval(function () {
    if (currentRun && socket && socket.readyState === WebSocket.OPEN && Date.now() - lastEventAt > QUIET_MS) {
      lastEventAt = Date.now();
      socket.close(4000, "quiet");
    }
  }, 5000);
  var currentRun = null; // {id, bubble, content}
  var failedRunId = null;
  var pending = {}; // client_id -> {text, bubble}
  var counter = 0;
  var pendingAction = null; // "regenerate" | "continue" | "edit" | "repaint": how the next accepted run shows
  var repaintingId = null; // the reply whose picture this tab asked to paint again
  var editing = false; // the composer is editing the last message
  var editingId = null; // ... this one (the server refuses if it is no longer the last)
  var ownRuns = {}; // runs this tab started: their "turn.started" is news only for the other tabs
  var continueButton = root.querySelector("[data-continue]");

  // ---- rendering ----

  function renderRich(el, text) {
    el.textContent = "";
    var pattern = /\*([^*\n]{1,500})\*/g;
    var last = 0;
    var match;
    while ((match = pattern.exec(text)) !== null) {
      if (match.index > last) el.appendChild(document.createTextNode(text.slice(last, match.index)));
      var em = document.createElement("em");
      em.textContent = match[1];
      el.appendChild(em);
      last = pattern.lastIndex;
    }
    if (last < text.length) el.appendChild(document.createTextNode(text.slice(last)));
  }

  // The text as written, *asterisks* included: renderRich's inverse. Offsets from the
  // server, "continue", "edit" and "copy" all work on this, never on what is shown.
  function rawText(el) {
    var out = "";
    el.childNodes.forEach(function (node) {
      out += node.nodeName === "EM" ? "*" + node.textContent + "*" : node.textContent;
    });
    return out;
  }

  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  function scrollIfFollowing(wasNear) {
    if (wasNear) log.scrollTop = log.scrollHeight;
  }

  function timeNode(date) {
    var t = document.createElement("time");
    t.className = "small muted";
    t.dateTime = date.toISOString();
    t.textContent = date.toTimeString().slice(0, 5);
    return t;
  }

  function addBubble(role, text, options) {
    options = options || {};
    var wasNear = nearBottom();
    var li = document.createElement("li");
    li.className = "bubble " + role;
    if (options.id) {
      li.id = "message-" + options.id;
      li.dataset.messageId = options.id;
    }
    if (options.finishReason) li.dataset.finishReason = options.finishReason;
    if (options.versions) li.dataset.versions = String(options.versions);
    if (options.incomplete) li.classList.add("incomplete");
    if (options.sender) {
      li.dataset.companionId = options.sender.id;
      li.appendChild(senderHeader(options.sender));
    }
    var body = document.createElement("div");
    body.className = "bubble-text";
    renderRich(body, text);
    li.appendChild(body);
    if (options.reasoning) setReasoning(li, options.reasoning);
    if (options.imageUrl) addImage(li, options.imageUrl);
    li.appendChild(timeNode(options.date || new Date()));
    decorate(li);
    if (options.prepend) {
      var marker = log.querySelector(".load-older");
      log.insertBefore(li, marker ? marker.nextSibling : log.firstChild);
    } else {
      log.appendChild(li);
      scrollIfFollowing(wasNear || role === "user");
    }
    return li;
  }

  function addImage(bubble, url) {
    if (bubble.querySelector(".bubble-image")) return;
    var link = document.createElement("a");
    link.href = url;
    link.className = "bubble-image";
    link.dataset.enlarge = "";
    var img = document.createElement("img");
    var wasNear = nearBottom();
    // Keep following the conversation once the picture has its height.
    img.addEventListener("load", function () { scrollIfFollowing(wasNear); });
    img.src = url;
    img.alt = "Picture";
    link.appendChild(img);
    var time = bubble.querySelector("time");
    bubble.insertBefore(link, time);
    if (!isGroup) addPictureControls(bubble);
  }

  // Paint again / use as profile picture / delete, as buttons sending websocket frames (the page
  // draws the same buttons inside plain forms, which work without JavaScript).
  var PICTURE_ACTIONS = [
    ["picture.repaint", "Paint again", "Paint this picture again: the same scene, a new seed"],
    ["picture.use_as_header", "Use as profile picture", "Make this the profile picture"],
    ["picture.delete", "Delete picture", "Delete this picture (the message stays)"]
  ];

  function addPictureControls(bubble) {
    if (bubble.querySelector("[data-picture-controls]")) return;
    var box = document.createElement("div");
    box.className = "picture-controls row";
    box.dataset.pictureControls = "";
    PICTURE_ACTIONS.forEach(function (a) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "btn btn-ghost small";
      b.dataset.pictureAction = a[0];
      b.textContent = a[1];
      b.title = a[2];
      box.appendChild(b);
    });
    bubble.appendChild(box);
  }

  function removePicture(bubble) {
    ["[data-picture-controls]", ".bubble-image"].forEach(function (sel) {
      var el = bubble.querySelector(sel);
      if (el) el.remove();
    });
  }

  function onPictureAction(event) {
    var button = event.target.closest("[data-picture-action]");
    if (!button) return false;
    event.preventDefault(); // the socket does it; the form is for pages without JavaScript
    var li = button.closest(".bubble");
    var id = parseInt(li.dataset.messageId, 10);
    var action = button.dataset.pictureAction;
    if (action === "picture.delete" && !button.dataset.armed) {
      button.dataset.armed = "1";
      button.textContent = "Delete picture?";
      setTimeout(function () { delete button.dataset.armed; button.textContent = "Delete picture"; }, 3000);
      return true;
    }
    if (send({ type: action, message_id: id }) && action === "picture.repaint") {
      pendingAction = "repaint";
      repaintingId = id;
    }
    return true;
  }

  function showHeader(url) {
    var head = root.querySelector(".chat-head .avatar");
    if (!head) return;
    if (head.tagName !== "IMG") {
      var img = document.createElement("img");
      img.className = "avatar";
      img.alt = "";
      img.width = 48;
      img.height = 48;
      head.replaceWith(img);
      head = img;
    }
    head.src = url;
  }

  // sender: {id, name, avatar_url}. A member's avatar is copied from the page head; one who has
  // left the group (older messages) gets theirs built as groups/_avatar.html draws it.
  function senderHeader(sender) {
    var head = document.createElement("div");
    head.className = "bubble-sender";
    var avatar = root.querySelector('[data-avatar-for="' + sender.id + '"] .avatar');
    head.appendChild(avatar ? avatar.cloneNode(true) : avatarNode(sender));
    var label = document.createElement("span");
    label.className = "sender-name";
    label.textContent = sender.name;
    head.appendChild(label);
    return head;
  }

  function avatarNode(sender) {
    var el;
    if (sender.avatar_url) {
      el = document.createElement("img");
      el.className = "avatar";
      el.src = sender.avatar_url;
      el.alt = "";
      el.loading = "lazy";
    } else {
      el = document.createElement("span");
      el.className = "avatar avatar-initial";
      el.setAttribute("aria-hidden", "true");
      el.textContent = (sender.name || "?").charAt(0).toUpperCase();
    }
    return el;
  }

  function streamingBubble(runId, who, existingId) {
    if (currentRun && currentRun.id === runId && currentRun.bubble) return currentRun;
    if (currentRun && currentRun.bubble && currentRun.id !== runId) finishBubble(null);
    var bubble = existingId ? document.getElementById("message-" + existingId) : null;
    if (!bubble) {
      var named = isGroup && who && who.sender ? { id: who.companion_id, name: who.sender } : null;
      bubble = addBubble("assistant", "", { sender: named });
    }
    bubble.classList.add("streaming");
    bubble.classList.remove("incomplete");
    bubble.setAttribute("aria-busy", "true");
    currentRun = { id: runId, bubble: bubble, content: "", points: 0 };
    if (existingId) setContent(currentRun, rawText(bubble.querySelector(".bubble-text")));
    return currentRun;
  }

  // Offsets from the server count Unicode code points; a JavaScript string's length counts an emoji
  // as two. ``points`` keeps the reply's length the server's way.
  function setContent(run, text) {
    run.content = text;
    run.points = Array.from(text).length;
  }

  function applyTokens(run, offset, text) {
    var wasNear = nearBottom();
    var body = run.bubble.querySelector(".bubble-text");
    if (offset === run.points) {
      run.content += text;
      run.points += Array.from(text).length;
      body.appendChild(document.createTextNode(text)); // linear: no re-render per token
    } else {
      // Overlap with the snapshot, or a restarted reply: the server's text wins from offset on.
      setContent(run, Array.from(run.content).slice(0, offset).join("") + text);
      body.textContent = run.content;
    }
    scrollIfFollowing(wasNear);
  }

  // ---- message actions: copy, delete, regenerate, versions, edit, continue ----

  function actionButton(label, action, title) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "bubble-action";
    b.dataset.action = action;
    b.textContent = label;
    b.title = title;
    b.setAttribute("aria-label", title);
    return b;
  }

  function decorate(li) {
    if (li.querySelector(".bubble-actions") || li.classList.contains("greeting")) return;
    var bar = document.createElement("div");
    bar.className = "bubble-actions";
    bar.appendChild(actionButton("Copy", "copy", "Copy this message"));
    if (li.classList.contains("assistant")) {
      bar.appendChild(actionButton("Again", "regenerate", "Write this reply again"));
      var versions = actionButton("", "version", "Show the other version");
      bar.appendChild(versions);
    } else if (!isGroup) {
      bar.appendChild(actionButton("Edit", "edit", "Edit your last message"));
    }
    bar.appendChild(actionButton("Delete", "delete", "Delete this message"));
    li.insertBefore(bar, li.querySelector("time"));
  }

  // A reply being written again: its text becomes one more version, and its picture goes.
  function keepOldVersion(bubble, versions) {
    bubble.dataset.versions = String(versions || parseInt(bubble.dataset.versions || "1", 10) + 1);
    var picture = bubble.querySelector(".bubble-image");
    if (picture) picture.remove();
  }

  function lastOf(role) {
    var all = log.querySelectorAll(".bubble." + role + "[data-message-id]");
    return all.length ? all[all.length - 1] : null;
  }

  function refreshActions() {
    var busy = !!currentRun || sendButton.disabled; // a group turn is busy between its replies too
    var lastAssistant = lastOf("assistant");
    var lastUser = lastOf("user");
    log.querySelectorAll(".bubble[data-message-id]").forEach(function (li) {
      decorate(li);
      li.querySelectorAll(".bubble-action").forEach(function (b) {
        var action = b.dataset.action;
        var show = !busy || action === "copy";
        // Only the conversation's last reply (a later message of yours would need an answer first).
        if (action === "regenerate") show = show && li === lastAssistant && li === log.lastElementChild;
        if (action === "edit") show = show && li === lastUser;
        if (action === "version") {
          var n = parseInt(li.dataset.versions || "1", 10);
          show = show && n > 1;
          b.textContent = "Versions: " + n;
        }
        b.hidden = !show;
      });
    });
    // A picture is painted again only when no reply is being written (the server says "busy").
    log.querySelectorAll('[data-picture-action="picture.repaint"]').forEach(function (b) { b.hidden = busy; });
    // Only messages with an id can be acted on (a pending one has none yet).
    var lastIsCut = lastAssistant && lastAssistant.dataset.finishReason === "length" && lastAssistant === log.querySelector(".bubble:last-child");
    if (continueButton) continueButton.hidden = busy || !lastIsCut;
  }

  function copyText(li, button) {
    var text = rawText(li.querySelector(".bubble-text"));
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () {});
    }
  }

  function confirmDelete(li, button) {
    if (button.dataset.armed) {
      send({ type: "message.delete", message_id: parseInt(li.dataset.messageId, 10) });
      return;
    }
    button.dataset.armed = "1";
    button.textContent = "Delete?";
    setTimeout(function () { delete button.dataset.armed; button.textContent = "Delete"; }, 3000);
  }

  function startEdit(li) {
    editing = true;
    editingId = parseInt(li.dataset.messageId, 10);
    textarea.value = rawText(li.querySelector(".bubble-text"));
    sendButton.textContent = "Save and resend";
    composer.classList.add("editing");
    textarea.focus();
  }

  function stopEdit() {
    editing = false;
    editingId = null;
    sendButton.textContent = "Send";
    composer.classList.remove("editing");
  }

  function onAction(event) {
    var button = event.target.closest(".bubble-action");
    if (!button) return false;
    var li = button.closest(".bubble");
    var action = button.dataset.action;
    if (action === "copy") copyText(li, button);
    else if (action === "delete") confirmDelete(li, button);
    else if (action === "edit") startEdit(li);
    else if (action === "regenerate" && send({ type: "message.regenerate", message_id: parseInt(li.dataset.messageId, 10) })) pendingAction = "regenerate";
    else if (action === "version") send({ type: "message.alternative", message_id: parseInt(li.dataset.messageId, 10) });
    return true;
  }

  // ---- run status ----

  function showProgress(value, step, percent) {
    runBox.hidden = false;
    bar.style.width = Math.max(0, Math.min(100, value)) + "%";
    progressEl.setAttribute("aria-valuenow", String(value));
    stepEl.textContent = (speaker && STEPS[step] ? speaker.sender + ": " : "") + (STEPS[step] || "");
    // The picture service's own progress, when it reports one.
    if (step === "generate_image" && typeof percent === "number") stepEl.textContent += " " + percent + "%";
    setBusy(true);
  }

  function setBusy(busy) {
    sendButton.disabled = busy;
    cancelButton.hidden = !busy;
    if (!busy) runBox.hidden = true;
    refreshActions();
  }

  function showError(message, runId) {
    errorBox.hidden = false;
    errorText.textContent = message;
    failedRunId = runId || null;
    retryButton.hidden = !runId || isGroup;
  }

  function clearError() {
    errorBox.hidden = true;
    errorText.textContent = "";
    failedRunId = null;
  }

  function finishBubble(messageId) {
    if (!currentRun || !currentRun.bubble) return;
    var bubble = currentRun.bubble;
    bubble.classList.remove("streaming");
    bubble.removeAttribute("aria-busy");
    renderRich(bubble.querySelector(".bubble-text"), currentRun.content);
    if (messageId) {
      bubble.id = "message-" + messageId;
      bubble.dataset.messageId = messageId;
    }
  }

  // What a reasoning model thought, under its reply and collapsed: read only when asked for.
  // Plain text (textContent), as the page's own <details> shows it.
  function setReasoning(bubble, text) {
    var old = bubble.querySelector(".reasoning");
    if (old) old.remove();
    if (!text) return;
    var details = document.createElement("details");
    details.className = "reasoning";
    var summary = document.createElement("summary");
    summary.textContent = "Show reasoning";
    var body = document.createElement("div");
    body.className = "reasoning-text";
    body.textContent = text;
    details.appendChild(summary);
    details.appendChild(body);
    bubble.querySelector(".bubble-text").after(details);
  }

  // ---- protocol ----

  // The user's message now reads ``text`` (null: unchanged) and nothing after it stays.
  function showEdited(messageId, text) {
    var mine = document.getElementById("message-" + messageId);
    if (!mine) return;
    if (text !== null) renderRich(mine.querySelector(".bubble-text"), text);
    while (mine.nextElementSibling) mine.nextElementSibling.remove();
  }

  // A run began: "regenerate" and "continue" stream into the reply they rewrite (``replyId``; this
  // tab's own name none and mean the last one), anything else into a new bubble. ``versions``: how
  // many the rewritten reply has now, when the server said.
  function beginRun(runId, kind, replyId, versions) {
    clearError();
    if (isGroup) lastRunId = runId;
    var reuse = null;
    if (kind === "regenerate" || kind === "continue") {
      reuse = replyId ? document.getElementById("message-" + replyId) : lastOf("assistant");
    } else if (kind === "repaint") {
      reuse = replyId ? document.getElementById("message-" + replyId) : null;
      if (reuse) removePicture(reuse); // the new one comes with "image"
    }
    if (currentRun && currentRun.id === runId) {
      // A group's "turn.speaker" came first and opened the named bubble already.
      if (kind === "regenerate" && currentRun.bubble) keepOldVersion(currentRun.bubble, versions);
      showProgress(0, "");
      return;
    }
    if (currentRun && currentRun.bubble) finishBubble(null); // its "done" was lost: not streaming any more
    currentRun = { id: runId, bubble: null, content: "", points: 0, kind: kind };
    if (reuse) {
      var keep = kind === "continue" || kind === "repaint" ? rawText(reuse.querySelector(".bubble-text")) : "";
      if (kind === "regenerate") keepOldVersion(reuse, versions);
      reuse.querySelector(".bubble-text").textContent = keep;
      reuse.classList.add("streaming");
      reuse.classList.remove("incomplete");
      currentRun.bubble = reuse;
      setContent(currentRun, keep);
    }
    // 1:1 shows "typing…" until the first words come; a group waits for "turn.speaker" to name who.
    if (!currentRun.bubble && !isGroup) streamingBubble(runId);
    showProgress(0, "");
  }

  function setSpeaker(who) {
    speaker = who && who.sender ? { companion_id: who.companion_id, sender: who.sender } : null;
    root.querySelectorAll("[data-companion-state]").forEach(function (el) {
      el.classList.toggle("speaking", !!speaker && el.dataset.companionState === String(speaker.companion_id));
    });
  }

  function onSnapshot(run) {
    if (!run) {
      if (currentRun && currentRun.bubble) {
        // The reply ended while we missed its last events: the page from the server has all of it.
        location.reload();
        return;
      }
      if (currentRun) { finishBubble(null); currentRun = null; }
      setBusy(false);
      return;
    }
    if (run.status === "queued" || run.status === "running") {
      if (isGroup) { setSpeaker(run); lastRunId = run.id; }
      var live = streamingBubble(run.id, run, run.message_id);
      applyTokens(live, 0, run.content);
      showProgress(run.progress, run.step);
    } else if (run.status === "failed") {
      setBusy(false);
      showError((run.error && run.error.message) || "The reply failed.", run.id);
    }
  }

  var handlers = {
    snapshot: function (e) {
      updateState(e.companion.state);
      onSnapshot(e.run);
    },
    "group.snapshot": function (e) {
      e.group.companions.forEach(function (c) { updateState(c.state, c.id); });
      setSpeaker(e.speaking);
      onSnapshot(e.run);
    },
    "turn.speaker": function (e) {
      setSpeaker(e);
      lastRunId = e.run_id;
      // A new reply shows "typing…" under the name until the first words come; a reply written
      // again (message_id) streams into its own bubble.
      streamingBubble(e.run_id, e, e.message_id);
      showProgress(0, "");
    },
    "turn.done": function () {
      if (currentRun && currentRun.bubble) finishBubble(null);
      currentRun = null;
      setSpeaker(null);
      setBusy(false);
    },
    "message.accepted": function (e) {
      var sent = pending[e.client_id];
      if (sent) {
        sent.bubble.id = "message-" + e.message_id;
        sent.bubble.dataset.messageId = e.message_id;
        sent.bubble.classList.remove("pending");
        delete pending[e.client_id];
      }
      ownRuns[e.run_id] = true;
      if (pendingAction === "edit") showEdited(e.message_id, textarea.dataset.sent || "");
      beginRun(e.run_id, pendingAction || "send", pendingAction === "repaint" ? repaintingId : null, null);
      pendingAction = null;
      repaintingId = null;
    },
    // A run another tab, device or the plain form started; this tab's own came as "message.accepted",
    // which its socket always gets first.
    "turn.started": function (e) {
      if (ownRuns[e.run_id]) {
        // Only the server knows how many versions a rewritten reply keeps.
        if (e.versions && currentRun && currentRun.id === e.run_id && currentRun.bubble) {
          currentRun.bubble.dataset.versions = String(e.versions);
        }
        return;
      }
      var said = e.user_message;
      // The message being edited here may no longer be the last one: keep the draft, leave edit mode.
      var editGone = editing && (e.kind === "send" || e.kind === "edit");
      if (editGone) stopEdit();
      if (e.kind === "send" && !document.getElementById("message-" + said.id)) {
        addBubble("user", said.content, { id: said.id, date: new Date(said.created_at) });
      } else if (e.kind === "edit") {
        showEdited(said.id, said.content);
      } else if (e.kind === "retry") {
        showEdited(said.id, null); // the failed attempt's partial reply is gone
      }
      beginRun(e.run_id, e.kind, e.reply_id, e.versions);
      if (editGone) {
        showError("Your last message changed in another tab. Your text is still here: send it as a new message, or edit again.", null);
      }
    },
    progress: function (e) {
      if (e.step === "done") return;
      showProgress(e.progress, e.step, e.percent);
    },
    token: function (e) {
      applyTokens(streamingBubble(e.run_id, e), e.offset || 0, e.text);
    },
    state: function (e) {
      updateState(e, e.companion_id);
    },
    image: function (e) {
      var bubble = (currentRun && currentRun.bubble) || document.getElementById("message-" + e.message_id);
      if (bubble) addImage(bubble, e.url);
    },
    done: function (e) {
      finishBubble(e.message_id);
      var bubble = document.getElementById("message-" + e.message_id);
      if (bubble) {
        bubble.dataset.finishReason = e.finish_reason || "";
        setReasoning(bubble, e.reasoning || "");
      }
      currentRun = null;
      if (!isGroup) setBusy(false); // a group turn goes on until "turn.done"
    },
    "message.deleted": function (e) {
      var bubble = document.getElementById("message-" + e.message_id);
      if (bubble) bubble.remove();
      refreshActions();
    },
    "picture.removed": function (e) {
      var bubble = document.getElementById("message-" + e.message_id);
      if (bubble) removePicture(bubble);
    },
    "companion.header": function (e) {
      showHeader(e.url);
    },
    "message.updated": function (e) {
      var bubble = document.getElementById("message-" + e.message_id);
      if (!bubble) return;
      renderRich(bubble.querySelector(".bubble-text"), e.content);
      bubble.dataset.versions = String(e.versions);
      refreshActions();
    },
    error: function (e) {
      if (e.run_id) {
        if (e.code === "image_failed") {
          showError(e.message, null);
          return;
        }
        // A picture painted again that stopped: the reply's text is whole, and a retry would rewrite it.
        var repainting = !!currentRun && currentRun.kind === "repaint";
        finishBubble(null);
        if (currentRun && currentRun.bubble && !repainting) {
          if (!currentRun.content) currentRun.bubble.remove(); // nothing was written: no empty bubble
          else currentRun.bubble.classList.add("incomplete");
        }
        currentRun = null;
        if (isGroup) {
          // The next companion goes on; "turn.done" ends the turn.
          showError((e.sender ? e.sender + ": " : "") + e.message, null);
          return;
        }
        setBusy(false);
        showError(e.message, repainting ? null : e.run_id);
        return;
      }
      // A refused frame: give the text back so nothing typed is lost.
      if (pendingAction === "edit" && !textarea.value) textarea.value = textarea.dataset.sent || "";
      pendingAction = null;
      Object.keys(pending).forEach(function (id) {
        var sent = pending[id];
        sent.bubble.remove();
        if (!textarea.value) textarea.value = sent.text;
        delete pending[id];
      });
      var message = e.message;
      if (e.retry_after) message += " (try again in " + e.retry_after + " s)";
      showError(message, null);
      if (!currentRun) setBusy(false);
    },
    pong: function () {}
  };

  function updateState(s, companionId) {
    var scope = companionId ? root.querySelector('[data-companion-state="' + companionId + '"]') : root;
    if (!scope) return;
    ["outfit", "location", "action"].forEach(function (key) {
      var el = scope.querySelector('[data-state="' + key + '"]');
      if (el && typeof s[key] === "string") el.textContent = s[key];
    });
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + root.dataset.wsPath);
    connectionEl.textContent = attempt ? "Reconnecting…" : "Connecting…";
    socket.onopen = function () {
      attempt = 0;
      connectionEl.textContent = "Online";
      root.classList.remove("offline");
    };
    socket.onmessage = function (message) {
      lastEventAt = Date.now();
      var event;
      try { event = JSON.parse(message.data); } catch (err) { return; }
      var handler = handlers[event.type];
      if (handler) handler(event);
    };
    socket.onclose = function (event) {
      root.classList.add("offline");
      pendingAction = null; // an answer that never came; the snapshot on reconnect says where things are
      if (event.code === 4401 || event.code === 4403 || event.code === 4404) {
        connectionEl.textContent = "Signed out — reload the page.";
        return;
      }
      attempt += 1;
      var delay = Math.min(15000, 500 * Math.pow(2, attempt)) * (0.75 + Math.random() * 0.5);
      connectionEl.textContent = "Connection lost — reconnecting…";
      setTimeout(connect, delay);
    };
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  // ---- composer ----

  composer.addEventListener("submit", function (event) {
    var text = textarea.value.trim();
    if (!text) { event.preventDefault(); return; }
    if (!socket || socket.readyState !== WebSocket.OPEN) return; // the form posts instead
    event.preventDefault();
    if (editing) {
      if (send({ type: "message.edit", content: text, message_id: editingId })) {
        pendingAction = "edit";
        textarea.dataset.sent = text;
        textarea.value = "";
        stopEdit();
        clearError();
      }
      return;
    }
    counter += 1;
    var clientId = "c" + Date.now() + "-" + counter;
    var bubble = addBubble("user", text);
    bubble.classList.add("pending");
    pending[clientId] = { text: text, bubble: bubble };
    send({ type: "message.send", content: text, image: !!(wantImage && wantImage.checked), client_id: clientId });
    textarea.value = "";
    if (wantImage) wantImage.checked = false;
    clearError();
  });

  textarea.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && editing) {
      textarea.value = "";
      stopEdit();
      return;
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!sendButton.disabled) composer.requestSubmit();
    }
  });

  if (continueButton) continueButton.addEventListener("click", function () {
    var cut = lastOf("assistant");
    if (cut && send({ type: "message.continue", message_id: parseInt(cut.dataset.messageId, 10) })) pendingAction = "continue";
  });

  cancelButton.addEventListener("click", function () {
    var runId = currentRun ? currentRun.id : (isGroup ? lastRunId : null);
    if (runId) send({ type: "run.cancel", run_id: runId });
  });

  retryButton.addEventListener("click", function () {
    if (!failedRunId) return;
    var stale = log.querySelector(".bubble.assistant.incomplete:last-of-type");
    if (stale) stale.remove();
    send({ type: "run.retry", run_id: failedRunId });
    clearError();
  });

  // ---- older history and pictures ----

  function loadOlder(button) {
    var first = log.querySelector("[data-message-id]");
    if (!first) return;
    button.disabled = true;
    var height = log.scrollHeight;
    fetch(root.dataset.olderUrl + "?before=" + encodeURIComponent(first.dataset.messageId), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (page) {
        page.messages.slice().reverse().forEach(function (m) {
          addBubble(m.role, m.content, {
            id: m.id, imageUrl: m.image_url, prepend: true, date: new Date(m.created_at),
            finishReason: m.finish_reason, versions: m.versions, incomplete: !m.complete,
            reasoning: m.reasoning, // one-to-one replies of a reasoning model
            sender: m.sender // group chats: null for the user's own words
          });
        });
        log.scrollTop = log.scrollHeight - height;
        refreshActions();
        if (!page.has_older) button.parentNode.remove();
        else button.disabled = false;
      })
      .catch(function () { button.disabled = false; });
  }

  log.addEventListener("click", function (event) {
    if (onAction(event) || onPictureAction(event)) return;
    var older = event.target.closest("[data-older]");
    if (older) { loadOlder(older); return; }
    var link = event.target.closest("[data-enlarge]");
    if (link && lightbox && lightbox.showModal) {
      event.preventDefault();
      lightbox.querySelector("[data-lightbox-img]").src = link.href;
      lightbox.showModal();
    }
  });

  log.addEventListener("scroll", function () {
    if (log.scrollTop < 40) {
      var older = log.querySelector("[data-older]:not([disabled])");
      if (older) loadOlder(older);
    }
  });

  log.scrollTop = log.scrollHeight;
  refreshActions();
  connect();
})();

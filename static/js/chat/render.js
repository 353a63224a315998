/* global gettext, ngettext, interpolate */
// The conversation on the page: message bubbles, their action bars, versions and pictures, older
// pages, the lightbox, and the page's head and state panel. It sends nothing itself: what the user
// asks for through a bubble goes to the callbacks given to ChatLog.listen.
// Untrusted text (user and model) only ever reaches the page through textContent; *emphasis*
// becomes <em> elements built node by node.

// Shows ``text`` in ``el``, each *action* as an <em>. ``streaming``: the reply is still being
// written, so an action begun and not yet closed (``*waves``) is shown as one already.
export function renderRich(el, text, streaming = false) {
  el.textContent = "";
  const pattern = streaming ? /\*([^*\n]{1,500})(?:\*|$)/g : /\*([^*\n]{1,500})\*/g;
  let last = 0;
  let match;
  while ((match = pattern.exec(text)) !== null) {
    if (match.index > last) el.appendChild(document.createTextNode(text.slice(last, match.index)));
    const em = document.createElement("em");
    em.textContent = match[1];
    if (!match[0].endsWith("*")) em.dataset.open = ""; // rawText gives it no closing asterisk
    el.appendChild(em);
    last = pattern.lastIndex;
  }
  if (last < text.length) el.appendChild(document.createTextNode(text.slice(last)));
}

// The text as written, *asterisks* included: renderRich's inverse. Offsets from the
// server, "continue", "edit" and "copy" all work on this, never on what is shown.
export function rawText(el) {
  let out = "";
  el.childNodes.forEach((node) => {
    if (node.nodeName !== "EM") out += node.textContent;
    else out += "*" + node.textContent + (node.dataset.open === undefined ? "*" : "");
  });
  return out;
}

export function messageIdOf(bubble) {
  return parseInt(bubble.dataset.messageId, 10);
}

import { StickToBottom } from "./scroll.js";

// The page's language (the <html lang> the server writes): dates and numbers are shown its way.
export function pageLanguage() {
  return document.documentElement.lang || undefined;
}

// Paint again / use as profile picture / delete, as buttons whose frames the page sends (the
// server draws the same buttons inside plain forms, which work without JavaScript).
function pictureActions() {
  return [
    ["picture.repaint", gettext("Paint again"), gettext("Paint this picture again: the same scene, a new seed")],
    ["picture.use_as_header", gettext("Use as profile picture"), gettext("Make this the profile picture")],
    ["picture.delete", gettext("Delete picture"), gettext("Delete this picture (the message stays)")],
  ];
}

// A two-step button: the first click asks ("Delete?") for a few seconds, the second does it.
function armed(button, asking, label) {
  if (button.dataset.armed) return true;
  button.dataset.armed = "1";
  button.textContent = asking;
  setTimeout(() => {
    delete button.dataset.armed;
    button.textContent = label;
  }, 3000);
  return false;
}

function timeNode(date) {
  const t = document.createElement("time");
  t.className = "small muted";
  t.dateTime = date.toISOString();
  t.textContent = new Intl.DateTimeFormat(pageLanguage(), { hour: "numeric", minute: "2-digit" }).format(date);
  return t;
}

// label: what it shows; title: its tooltip, and its accessible name unless ``name`` is given.
function actionButton(label, action, title, name = title) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "bubble-action";
  b.dataset.action = action;
  b.textContent = label;
  setTitle(b, title, name);
  return b;
}

// A button's tooltip and accessible name.
function setTitle(button, title, name = title) {
  if (button.title === title) return;
  button.title = title;
  button.setAttribute("aria-label", name);
}

// a precedes b in the document.
function precedes(a, b) {
  return !!(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
}

function avatarNode(sender) {
  let el;
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

// The conversation's <ol data-log>. Every message can be copied, corrected ("Edit"), branched
// from and deleted once it is complete; the last reply (to a message of the user's) can be
// written again, any message with versions (a reply written again, a greeting with alternates)
// flipped, and your last message edited and answered afresh. A picture has its buttons.
// Every reply is named by its companion: avatar and name, as chat/conversation.html draws them.
export class ChatLog {
  constructor(root) {
    this.root = root;
    this.el = root.querySelector("[data-log]");
    this.lightbox = root.querySelector("[data-lightbox]");
    this.olderUrl = root.dataset.olderUrl;
    // A one-to-one chat's replies are named too: by its one companion.
    this.companion = root.dataset.companionName
      ? { id: root.dataset.companionId, name: root.dataset.companionName }
      : null;
    this.stick = new StickToBottom(this.el, root.querySelector("[data-jump-latest]"));
  }

  byId(messageId) {
    return document.getElementById("message-" + messageId);
  }

  lastOf(role) {
    const all = this.el.querySelectorAll(".bubble." + role + "[data-message-id]");
    return all.length ? all[all.length - 1] : null;
  }

  // Following what comes (StickToBottom) is automatic; these are for the reader's own moves.
  scrollToEnd() {
    this.stick.toEnd();
  }


  // options: id, date, finishReason, versions, incomplete, reasoning, imageUrl, prepend (an older
  // message, above the others), sender ({id, name, avatar_url}: a companion's reply in a group).
  addBubble(role, text, options = {}) {
    const li = document.createElement("li");
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
      li.appendChild(this.senderHeader(options.sender));
    }
    const body = document.createElement("div");
    body.className = "bubble-text";
    renderRich(body, text);
    li.appendChild(body);
    if (options.reasoning) this.setReasoning(li, options.reasoning);
    li.appendChild(timeNode(options.date || new Date()));
    if (options.imageUrl) this.addImage(li, options.imageUrl);
    if (options.edited) this.markEdited(li);
    this.decorate(li);
    if (options.prepend) {
      const marker = this.el.querySelector(".load-older");
      this.el.insertBefore(li, marker ? marker.nextSibling : this.el.firstChild);
    } else {
      this.el.appendChild(li);
    }
    return li;
  }

  // sender: {id, name, avatar_url}. A member's avatar is copied from the page head; one who has
  // left the group (older messages) gets theirs built as chat/_avatar.html draws it.
  senderHeader(sender) {
    const head = document.createElement("div");
    head.className = "bubble-sender";
    const avatar = this.root.querySelector('[data-avatar-for="' + sender.id + '"] .avatar');
    head.appendChild(avatar ? avatar.cloneNode(true) : avatarNode(sender));
    const label = document.createElement("span");
    label.className = "sender-name";
    label.textContent = sender.name;
    head.appendChild(label);
    return head;
  }

  addImage(bubble, url) {
    if (bubble.querySelector(".bubble-image")) return;
    const link = document.createElement("a");
    link.href = url;
    link.className = "bubble-image";
    link.dataset.enlarge = "";
    const img = document.createElement("img");
    img.src = url;
    const painter = bubble.querySelector(".sender-name");
    img.alt = painter
      ? interpolate(gettext("Picture from %(name)s"), { name: painter.textContent }, true)
      : gettext("Picture");
    link.appendChild(img);
    const actions = bubble.querySelector(".bubble-actions");
    bubble.insertBefore(link, actions || bubble.querySelector("time"));
    this.addPictureControls(bubble);
  }

  // A picture's buttons, in every chat: the picture is the reply's, whoever wrote it.
  addPictureControls(bubble) {
    if (bubble.querySelector("[data-picture-controls]")) return;
    const box = document.createElement("div");
    box.className = "picture-controls row";
    box.dataset.pictureControls = "";
    for (const [action, label, title] of pictureActions()) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "btn btn-ghost small";
      b.dataset.pictureAction = action;
      b.textContent = label;
      b.title = title;
      box.appendChild(b);
    }
    const time = bubble.querySelector(":scope > time");
    const after = bubble.querySelector(":scope > [data-edited-mark]") || time;
    if (after) after.after(box);
    else bubble.appendChild(box);
  }

  removePicture(bubble) {
    for (const selector of ["[data-picture-controls]", ".bubble-image"]) {
      const el = bubble.querySelector(selector);
      if (el) el.remove();
    }
  }

  // What a reasoning model thought, under its reply and collapsed: read only when asked for.
  // Plain text (textContent), as the page's own <details> shows it.
  setReasoning(bubble, text) {
    const old = bubble.querySelector(".reasoning");
    if (old) old.remove();
    if (!text) return;
    const details = document.createElement("details");
    details.className = "reasoning";
    const summary = document.createElement("summary");
    summary.textContent = gettext("Show reasoning");
    const body = document.createElement("div");
    body.className = "reasoning-text";
    body.textContent = text;
    details.appendChild(summary);
    details.appendChild(body);
    bubble.querySelector(".bubble-text").after(details);
  }

  // A reply being written again: its text becomes one more version, and its picture goes.
  keepOldVersion(bubble, versions) {
    bubble.dataset.versions = String(versions || parseInt(bubble.dataset.versions || "1", 10) + 1);
    const picture = bubble.querySelector(".bubble-image");
    if (picture) picture.remove();
  }

  // A message now shows another of its versions, or (``edited``) was corrected in place; false
  // when it is not on the page.
  showVersion(messageId, text, versions, edited = false) {
    const bubble = this.byId(messageId);
    if (!bubble) return false;
    renderRich(bubble.querySelector(".bubble-text"), text);
    bubble.dataset.versions = String(versions);
    if (edited) this.markEdited(bubble);
    return true;
  }

  // "edited" beside the message's time: it no longer reads as first written.
  markEdited(bubble) {
    bubble.dataset.edited = "";
    if (bubble.querySelector("[data-edited-mark]")) return;
    const mark = document.createElement("span");
    mark.className = "edited-mark small muted";
    mark.dataset.editedMark = "";
    mark.textContent = gettext("edited");
    const time = bubble.querySelector(":scope > time");
    if (time) time.after(mark);
    else bubble.appendChild(mark);
  }

  // The user's message now reads ``text`` (null: unchanged; else it is marked edited) and
  // nothing after it stays.
  showEdited(messageId, text) {
    const mine = this.byId(messageId);
    if (!mine) return;
    if (text !== null) {
      renderRich(mine.querySelector(".bubble-text"), text);
      this.markEdited(mine);
    }
    while (mine.nextElementSibling) mine.nextElementSibling.remove();
  }

  remove(messageId) {
    const bubble = this.byId(messageId);
    if (bubble) bubble.remove();
  }

  // A failed reply's partial text, about to be written again.
  removeStaleReply() {
    const stale = this.el.querySelector(".bubble.assistant.incomplete:last-of-type");
    if (stale) stale.remove();
  }

  // ---- action bars ----

  // The message's action bar (once); the server's plain forms for pages without JavaScript
  // ("More": Branch here, Save correction) give way to it.
  decorate(li) {
    if (li.querySelector(".bubble-actions") || li.classList.contains("greeting")) return;
    const more = li.querySelector("[data-message-more]");
    if (more) more.hidden = true;
    const bar = document.createElement("div");
    bar.className = "bubble-actions";
    bar.appendChild(actionButton(gettext("Copy"), "copy", gettext("Copy this message")));
    if (li.classList.contains("assistant")) {
      bar.appendChild(actionButton(gettext("Again"), "regenerate", gettext("Write this reply again")));
      bar.appendChild(actionButton("", "version", gettext("Show the other version")));
      bar.appendChild(actionButton(gettext("Prompt"), "prompt", gettext("See what was sent to the AI for this reply")));
      const listen = actionButton(gettext("Listen"), "listen", gettext("Read this reply aloud"));
      listen.setAttribute("aria-pressed", "false");
      bar.appendChild(listen);
    }
    bar.appendChild(actionButton(gettext("Edit"), "edit", gettext("Edit this message")));
    bar.appendChild(
      actionButton(
        gettext("Branch"),
        "branch",
        gettext("Branch here: go on from this message in another chat"),
        gettext("Branch here"),
      ),
    );
    bar.appendChild(actionButton(gettext("Delete"), "delete", gettext("Delete this message")));
    li.insertBefore(bar, li.querySelector(":scope > time"));
  }

  // The user's last message: the one "Edit" answers afresh ("Save and resend").
  lastUserMessage() {
    return this.lastOf("user");
  }

  // Which actions each message offers now; ``busy``: a reply (or a group's turn) is being written.
  refreshActions(busy) {
    const lastAssistant = this.lastOf("assistant");
    const lastUser = this.lastOf("user");
    // "Again" writes the conversation's last message again when it is a reply to one of yours
    // (a greeting before you have spoken answers nobody).
    const rewritable =
      lastAssistant && lastAssistant === this.el.lastElementChild && lastUser && precedes(lastUser, lastAssistant)
        ? lastAssistant
        : null;
    // Only messages with an id can be acted on (a pending one has none yet).
    this.el.querySelectorAll(".bubble[data-message-id]").forEach((li) => {
      this.decorate(li);
      // A reply cut short by a failure is not a message to build on: retry it, or delete it.
      const complete = !li.classList.contains("incomplete") && !li.classList.contains("streaming");
      li.querySelectorAll(".bubble-action").forEach((b) => {
        const action = b.dataset.action;
        let show = !busy;
        if (action === "copy") show = true;
        else if (action === "listen") show = !li.classList.contains("streaming"); // playing needs nothing of the server's
        else if (action === "branch") show = complete; // branching copies, so a reply may be on its way
        else if (action === "prompt") show = complete; // a page of its own: nothing to wait for
        else if (action === "regenerate") show = show && li === rewritable;
        else if (action === "edit") {
          show = show && complete;
          setTitle(b, li === lastUser ? gettext("Edit your last message") : gettext("Edit this message"));
        } else if (action === "version") {
          const n = parseInt(li.dataset.versions || "1", 10);
          show = show && n > 1;
          b.textContent = interpolate(gettext("Versions: %(count)s"), { count: n }, true);
        }
        b.hidden = !show;
      });
    });
    // A picture is painted again only when no reply is being written (the server says "busy").
    this.el.querySelectorAll('[data-picture-action="picture.repaint"]').forEach((b) => {
      b.hidden = busy;
    });
  }

  // The last reply when it is the conversation's last message and was cut at the length limit.
  cutReply() {
    const lastAssistant = this.lastOf("assistant");
    const isCut =
      lastAssistant &&
      lastAssistant.dataset.finishReason === "length" &&
      lastAssistant === this.el.querySelector(".bubble:last-child");
    return isCut ? lastAssistant : null;
  }

  // The owner's prompt view of a reply: a page of its own, under the conversation's messages.
  openPrompt(li) {
    const base = this.el.closest("[data-messages-url]");
    if (base) window.location.assign(`${base.dataset.messagesUrl}${messageIdOf(li)}/prompt/`);
  }

  copyText(li, button) {
    const text = rawText(li.querySelector(".bubble-text"));
    const done = () => {
      button.textContent = gettext("Copied");
      setTimeout(() => {
        button.textContent = gettext("Copy");
      }, 1500);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, () => {});
    }
  }

  // ---- clicks, older pages, the lightbox ----

  // asks.message(action, bubble): "delete" (confirmed), "edit", "branch", "regenerate", "version"
  // or "listen" (read the reply aloud, or stop);
  // asks.picture(action, messageId): a picture frame's type (Delete confirmed);
  // asks.paged(): older messages came in.
  listen(asks) {
    this.el.addEventListener("click", (event) => {
      if (this.onAction(event, asks) || this.onPictureAction(event, asks)) return;
      const older = event.target.closest("[data-older]");
      if (older) {
        this.loadOlder(older, asks);
        return;
      }
      const link = event.target.closest("[data-enlarge]");
      if (link && this.lightbox && this.lightbox.showModal) {
        event.preventDefault();
        this.lightbox.querySelector("[data-lightbox-img]").src = link.href;
        this.lightbox.showModal();
      }
    });
    this.el.addEventListener("scroll", () => {
      if (this.el.scrollTop < 40) {
        const older = this.el.querySelector("[data-older]:not([disabled])");
        if (older) this.loadOlder(older, asks);
      }
    });
  }

  onAction(event, asks) {
    const button = event.target.closest(".bubble-action");
    if (!button) return false;
    const li = button.closest(".bubble");
    const action = button.dataset.action;
    if (action === "copy") this.copyText(li, button);
    else if (action === "prompt") this.openPrompt(li);
    else if (action === "delete") {
      if (armed(button, gettext("Delete?"), gettext("Delete"))) asks.message("delete", li);
    } else asks.message(action, li);
    return true;
  }

  onPictureAction(event, asks) {
    const button = event.target.closest("[data-picture-action]");
    if (!button) return false;
    event.preventDefault(); // the socket does it; the form is for pages without JavaScript
    const action = button.dataset.pictureAction;
    if (action === "picture.delete" && !armed(button, gettext("Delete picture?"), gettext("Delete picture"))) {
      return true;
    }
    asks.picture(action, messageIdOf(button.closest(".bubble")));
    return true;
  }

  // Resolves true when a page came in and there are still older ones (the button stays).
  // One page at a time: a call while one is loading gets that one's promise.
  loadOlder(button, asks) {
    if (this.loading) return this.loading;
    const first = this.el.querySelector("[data-message-id]");
    if (!first) return Promise.resolve(false);
    button.disabled = true;
    const height = this.el.scrollHeight;
    this.loading = fetch(this.olderUrl + "?before=" + encodeURIComponent(first.dataset.messageId), { credentials: "same-origin" })
      .then((r) => r.json())
      .then((page) => {
        page.messages
          .slice()
          .reverse()
          .forEach((m) => {
            this.addBubble(m.role, m.content, {
              id: m.id,
              imageUrl: m.image_url,
              prepend: true,
              date: new Date(m.created_at),
              finishReason: m.finish_reason,
              versions: m.versions,
              incomplete: !m.complete,
              reasoning: m.reasoning, // replies of a reasoning model
              sender: m.sender, // null for the user's own words
            });
          });
        this.el.scrollTop = this.el.scrollHeight - height;
        asks.paged();
        if (!page.has_older) button.parentNode.remove();
        else button.disabled = false;
        return page.has_older;
      })
      .catch(() => {
        button.disabled = false;
        return false;
      })
      .finally(() => {
        this.loading = null;
      });
    return this.loading;
  }

  // A search result opened this page at one message (#message-<id>): load older pages until it
  // is here, bring it into view and mark it. False when it is not in this conversation.
  async reveal(messageId, asks) {
    let li = this.byId(messageId);
    while (!li) {
      const button = this.el.querySelector("[data-older]");
      const oldest = this.el.querySelector("[data-message-id]");
      // Pages go back by id: past an id older than the target, it is not in this conversation.
      if (!button || (oldest && Number(oldest.dataset.messageId) < Number(messageId))) break;
      const more = await this.loadOlder(button, asks);
      li = this.byId(messageId);
      if (!more) break;
    }
    if (!li || !li.matches(".bubble[data-message-id]")) return false;
    for (const old of this.el.querySelectorAll(".bubble.found")) {
      old.classList.remove("found");
      old.removeAttribute("aria-current");
    }
    li.classList.add("found");
    li.setAttribute("aria-current", "true");
    li.tabIndex = -1;
    this.stick.release();
    li.scrollIntoView({ block: "center" });
    li.focus({ preventScroll: true });
    return true;
  }
}

// ---- the page around the conversation ----

// The scene as the server writes it (companions/scene.py, the same rules and the page's
// translated words in ``grammar``): "Mika is at the park, wearing sportswear, working out."
export function sceneSentence(grammar, name, state) {
  const clean = (value) => (typeof value === "string" ? value.split(/\s+/).join(" ").trim() : "").replace(/[.,;: ]+$/, "");
  const startsWith = (value, words) => words.includes(value.split(" ", 1)[0].toLowerCase());
  const parts = [];
  const place = clean(state.location);
  if (place) parts.push(startsWith(place, grammar.place_words) ? place : grammar.place.replace("%(place)s", () => place));
  const worn = clean(state.outfit);
  if (worn) parts.push(startsWith(worn, grammar.outfit_words) ? worn : grammar.outfit.replace("%(outfit)s", () => worn));
  const doing = clean(state.action);
  if (doing) parts.push(doing);
  if (!parts.length) return "";
  return grammar.sentence.replace("%(name)s", () => name).replace("%(scene)s", () => parts.join(grammar.joiner));
}

// The companion's scene in the state panel: the page's one panel, or (a group) the one of
// ``companionId``.
export function updateState(root, state, companionId) {
  const scope = companionId ? root.querySelector('[data-companion-state="' + companionId + '"]') : root;
  const el = scope && scope.querySelector("[data-scene]");
  const grammar = document.getElementById("scene-grammar");
  if (!el || !grammar || !state) return;
  el.textContent = sceneSentence(JSON.parse(grammar.textContent), el.dataset.name, state);
}

// Marks whose state panel belongs to the companion answering now (none: null).
export function markSpeaking(root, companionId) {
  root.querySelectorAll("[data-companion-state]").forEach((el) => {
    el.classList.toggle("speaking", companionId !== null && el.dataset.companionState === String(companionId));
  });
}

// A companion's new profile picture in the page head: the one avatar of a one-to-one chat, or
// (``companionId``) a group member's.
export function showHeader(root, url, companionId = null) {
  const scope = companionId ? '[data-avatar-for="' + companionId + '"] ' : "";
  let head = root.querySelector(".chat-head " + scope + ".avatar");
  if (!head) return;
  if (head.tagName !== "IMG") {
    const img = document.createElement("img");
    img.className = "avatar";
    img.alt = "";
    img.width = 48;
    img.height = 48;
    head.replaceWith(img);
    head = img;
  }
  head.src = url;
}

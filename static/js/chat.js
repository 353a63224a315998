// The chat page's client: one websocket, the protocol in docs/websocket.md.
// Untrusted text (user and model) only ever reaches the page through
// textContent; *emphasis* becomes <em> elements built node by node.
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
  var currentRun = null; // {id, bubble, content}
  var failedRunId = null;
  var pending = {}; // client_id -> {text, bubble}
  var counter = 0;

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
    var body = document.createElement("div");
    body.className = "bubble-text";
    renderRich(body, text);
    li.appendChild(body);
    if (options.imageUrl) addImage(li, options.imageUrl);
    li.appendChild(timeNode(options.date || new Date()));
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
  }

  function streamingBubble(runId) {
    if (currentRun && currentRun.id === runId && currentRun.bubble) return currentRun;
    var bubble = addBubble("assistant", "");
    bubble.classList.add("streaming");
    bubble.setAttribute("aria-busy", "true");
    currentRun = { id: runId, bubble: bubble, content: "" };
    return currentRun;
  }

  function applyTokens(run, offset, text) {
    var wasNear = nearBottom();
    var body = run.bubble.querySelector(".bubble-text");
    if (offset === run.content.length) {
      run.content += text;
      body.appendChild(document.createTextNode(text)); // linear: no re-render per token
    } else {
      // Overlap with the snapshot, or a restarted reply: the server's text wins from offset on.
      run.content = run.content.slice(0, offset) + text;
      body.textContent = run.content;
    }
    scrollIfFollowing(wasNear);
  }

  // ---- run status ----

  function showProgress(value, step) {
    runBox.hidden = false;
    bar.style.width = Math.max(0, Math.min(100, value)) + "%";
    progressEl.setAttribute("aria-valuenow", String(value));
    stepEl.textContent = STEPS[step] || "";
    setBusy(true);
  }

  function setBusy(busy) {
    sendButton.disabled = busy;
    cancelButton.hidden = !busy;
    if (!busy) runBox.hidden = true;
  }

  function showError(message, runId) {
    errorBox.hidden = false;
    errorText.textContent = message;
    failedRunId = runId || null;
    retryButton.hidden = !runId;
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

  // ---- protocol ----

  var handlers = {
    snapshot: function (e) {
      updateState(e.companion.state);
      var run = e.run;
      if (!run) {
        if (currentRun) { finishBubble(null); currentRun = null; }
        setBusy(false);
        return;
      }
      if (run.status === "queued" || run.status === "running") {
        var live = streamingBubble(run.id);
        applyTokens(live, 0, run.content);
        showProgress(run.progress, run.step);
      } else if (run.status === "failed") {
        setBusy(false);
        showError((run.error && run.error.message) || "The reply failed.", run.id);
      }
    },
    "message.accepted": function (e) {
      var sent = pending[e.client_id];
      if (sent) {
        sent.bubble.id = "message-" + e.message_id;
        sent.bubble.dataset.messageId = e.message_id;
        sent.bubble.classList.remove("pending");
        delete pending[e.client_id];
      }
      clearError();
      currentRun = { id: e.run_id, bubble: null, content: "" };
      showProgress(0, "");
    },
    progress: function (e) {
      if (e.step === "done") return;
      showProgress(e.progress, e.step);
    },
    token: function (e) {
      applyTokens(streamingBubble(e.run_id), e.offset || 0, e.text);
    },
    state: function (e) {
      updateState(e);
    },
    image: function (e) {
      var bubble = (currentRun && currentRun.bubble) || document.getElementById("message-" + e.message_id);
      if (bubble) addImage(bubble, e.url);
    },
    done: function (e) {
      finishBubble(e.message_id);
      currentRun = null;
      setBusy(false);
    },
    error: function (e) {
      if (e.run_id) {
        if (e.code === "image_failed") {
          showError(e.message, null);
          return;
        }
        finishBubble(null);
        if (currentRun && currentRun.bubble) currentRun.bubble.classList.add("incomplete");
        currentRun = null;
        setBusy(false);
        showError(e.message, e.run_id);
        return;
      }
      // A refused frame: give the text back so nothing typed is lost.
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

  function updateState(s) {
    ["outfit", "location", "action"].forEach(function (key) {
      var el = root.querySelector('[data-state="' + key + '"]');
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
      var event;
      try { event = JSON.parse(message.data); } catch (err) { return; }
      var handler = handlers[event.type];
      if (handler) handler(event);
    };
    socket.onclose = function (event) {
      root.classList.add("offline");
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
    counter += 1;
    var clientId = "c" + Date.now() + "-" + counter;
    var bubble = addBubble("user", text);
    bubble.classList.add("pending");
    pending[clientId] = { text: text, bubble: bubble };
    send({ type: "message.send", content: text, image: !!wantImage.checked, client_id: clientId });
    textarea.value = "";
    wantImage.checked = false;
    clearError();
  });

  textarea.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!sendButton.disabled) composer.requestSubmit();
    }
  });

  cancelButton.addEventListener("click", function () {
    if (currentRun) send({ type: "run.cancel", run_id: currentRun.id });
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
          addBubble(m.role, m.content, { id: m.id, imageUrl: m.image_url, prepend: true, date: new Date(m.created_at) });
        });
        log.scrollTop = log.scrollHeight - height;
        if (!page.has_older) button.parentNode.remove();
        else button.disabled = false;
      })
      .catch(function () { button.disabled = false; });
  }

  log.addEventListener("click", function (event) {
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
  connect();
})();

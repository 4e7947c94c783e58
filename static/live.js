// Live pages (feed, key page, edit form, followed browse), under the strict CSP: no inline
// script. The stream is htmx's SSE extension; every fragment it carries is rendered and
// escaped by the server, and is inserted as HTML only through htmx or a <template>.
(function () {
  "use strict";
  if (window.kvLive) { return; }  // included by more than one part of a page
  window.kvLive = true;

  // Remember each EventSource, so pausing can close it at once (removing its element
  // alone would leave it open until the next event).
  var sources = [];
  var create = htmx.createEventSource || function (url) {
    return new EventSource(url, {withCredentials: true});
  };
  htmx.createEventSource = function (url) {
    var source = create(url);
    sources.push(source);
    return source;
  };

  function closeSources(connector) {
    var url = new URL(connector.getAttribute("sse-connect"), window.location.href).href;
    sources = sources.filter(function (source) {
      if (source.url === url) { source.close(); return false; }
      return true;
    });
  }

  function setState(connector, text) {
    var scope = connector.closest(".live-follow") || document;
    var state = scope.querySelector(".js-live-state");
    if (state) { state.textContent = text; }
  }

  function connector(target) {
    return target && target.closest ? target.closest(".js-live-connector") : null;
  }

  // The label and the banner say the same: "live" only while the dashboard's own stream
  // from the store is open. The server says when that stream fails ("status" with the
  // live-store-error banner) and when it is back ("status" with nothing).
  var INTERRUPTED = "interrupted: reconnecting to the store…";

  function storeStatusBox(c) {
    return document.getElementById(c.dataset.mode === "follow" ? "follow-notice" : "live-status");
  }

  document.addEventListener("htmx:sseOpen", function (event) {
    var c = connector(event.target);
    if (!c) { return; }
    c.dataset.state = "open";
    c.dataset.store = "";
    // a new connection: the server says again at once if the store is still away
    var box = storeStatusBox(c);
    if (box && box.querySelector('[data-testid="live-store-error"]')) { box.innerHTML = ""; }
    setState(c, "live");
  });
  document.addEventListener("htmx:sseError", function (event) {
    var c = connector(event.target);
    if (!c) { return; }
    c.dataset.state = "error";
    // an EventSource cannot read a refusal's body: say what it most likely is
    setState(c, "not connected: the dashboard may be at its limit of live streams " +
             "(Dashboard__MaxLiveStreams) or restarting; retrying…");
  });
  document.addEventListener("htmx:sseClose", function (event) {
    var c = connector(event.target);
    if (c && c.dataset.state !== "paused") { c.dataset.state = "closed"; setState(c, "closed"); }
  });

  // --- the feed: newest first, capped, filtered by op, paused and resumed --------------------

  function feedRows() { return document.getElementById("live-events"); }

  function applyFilters() {
    var rows = feedRows();
    if (!rows) { return; }
    document.querySelectorAll(".js-live-op").forEach(function (box) {
      rows.classList.toggle("hide-" + box.value, !box.checked);
    });
  }

  function trim() {
    var rows = feedRows();
    if (!rows) { return; }
    var max = parseInt(rows.dataset.max || "200", 10);
    while (rows.children.length > max) { rows.removeChild(rows.lastElementChild); }
  }

  function lastRevision() {
    var rows = feedRows();
    var first = rows && rows.querySelector("tr[data-revision]");
    return first ? first.dataset.revision : (rows && rows.dataset.since) || "";
  }

  function pause(button) {
    var c = document.getElementById("live-connector");
    if (!c) { return; }
    c.dataset.state = "paused";
    closeSources(c);
    var rows = feedRows();
    if (rows) { rows.dataset.since = lastRevision(); }
    c.removeAttribute("sse-connect");
    c.id = "";
    c.remove();
    button.setAttribute("aria-pressed", "true");
    button.textContent = "Resume";
    button.dataset.connector = c.outerHTML;
    setState(button, "paused: resuming replays what the store kept meanwhile");
  }

  function resume(button) {
    var holder = document.createElement("template");
    holder.innerHTML = button.dataset.connector || "";
    var c = holder.content.firstElementChild;
    if (!c) { return; }
    var url = c.dataset.streamUrl;
    var since = lastRevision();
    // ToskaStore replays the changes after this revision; Redis says it cannot
    c.setAttribute("sse-connect", since ? url + "&since=" + encodeURIComponent(since) : url);
    c.id = "live-connector";
    c.dataset.state = "";
    document.querySelector(".live-feed").insertAdjacentElement("afterend", c);
    htmx.process(c);
    button.setAttribute("aria-pressed", "false");
    button.textContent = "Pause";
    setState(button, "connecting…");
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest(".js-live-pause");
    if (button) {
      if (button.getAttribute("aria-pressed") === "true") { resume(button); } else { pause(button); }
      return;
    }
    if (event.target.closest(".js-live-reload")) {
      event.preventDefault();
      window.location.reload();
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target.classList.contains("js-live-op")) { applyFilters(); }
    if (event.target.classList.contains("js-live-follow")) { follow(event.target); }
  });

  document.addEventListener("htmx:sseMessage", function (event) {
    if (event.detail && event.detail.type === "change") { trim(); }
  });

  // --- the key page: a delete or expiry marks what is shown as the last value ----------------

  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var message = event.detail;
    var c = connector(event.target);
    if (!c || !message) { return; }
    if (message.type === "status" && c.dataset.state !== "paused") {
      var interrupted = String(message.data || "").indexOf('data-testid="live-store-error"') >= 0;
      c.dataset.store = interrupted ? "interrupted" : "";
      setState(c, interrupted ? INTERRUPTED : "live");
    }
    if (c.dataset.mode === "key" && (message.type === "gone" || message.type === "changed")) {
      // kept on the connector too: a reload of #key-state still in flight must not undo it
      c.dataset.keyGone = message.type === "gone" ? "true" : "";
      markGone(c);
    }
    if (c.dataset.mode === "follow") {
      event.preventDefault();
      onFollowMessage(message);
    }
  });

  function markGone(c) {
    var state = document.getElementById("key-state");
    if (!state) { return; }
    var gone = c.dataset.keyGone === "true";
    state.classList.toggle("live-gone", gone);
    if (gone) { state.dataset.gone = "true"; } else { delete state.dataset.gone; }
  }

  document.addEventListener("htmx:afterSettle", function () {
    var c = document.querySelector('.js-live-connector[data-mode="key"]');
    if (c && c.dataset.keyGone === "true") { markGone(c); }
  });

  // --- browse: follow the prefix live -------------------------------------------------------

  function parseRows(html) {
    var holder = document.createElement("template");
    holder.innerHTML = html;
    return Array.prototype.slice.call(holder.content.querySelectorAll("tr[data-key]"));
  }

  function rowFor(key) {
    var rows = document.getElementById("keys-rows");
    if (!rows) { return null; }
    var found = null;
    rows.querySelectorAll("tr[data-key]").forEach(function (row) {
      if (row.dataset.key === key) { found = row; }
    });
    return found;
  }

  function onFollowMessage(message) {
    var rows = document.getElementById("keys-rows");
    if (message.type === "row" && rows) {
      parseRows(message.data).forEach(function (row) {
        var old = rowFor(row.dataset.key);
        if (old) { old.remove(); }
        row.classList.add("live-new");
        row.dataset.live = "put";
        rows.insertAdjacentElement("afterbegin", row);
        htmx.process(row);
      });
      var empty = document.querySelector('#keys-results [data-testid="empty"]');
      if (empty) { empty.remove(); }
    } else if (message.type === "gone") {
      parseRows(message.data).forEach(function (gone) {
        var row = rowFor(gone.dataset.key);
        if (row) {
          row.classList.remove("live-new");
          row.classList.add("live-gone");
          row.dataset.live = gone.dataset.op;
          row.title = gone.dataset.op === "expire" ? "expired" : "deleted";
        }
      });
    } else if (message.type !== "end") {
      var note = document.getElementById("follow-notice");
      if (note) { note.innerHTML = message.data; }  // a server-rendered, escaped notice
    }
  }

  function stopFollowing(box) {
    var old = document.getElementById("follow-connector");
    if (old) { old.dataset.state = "paused"; closeSources(old); old.remove(); }
    var note = document.getElementById("follow-notice");
    if (note) { note.remove(); }
    setState(box, "");
  }

  function follow(box) {
    stopFollowing(box);
    if (!box.checked) { return; }
    var results = document.getElementById("keys-results");
    var prefix = results ? results.dataset.prefix || "" : "";
    var c = document.createElement("div");
    c.id = "follow-connector";
    c.className = "js-live-connector";
    c.dataset.mode = "follow";
    c.dataset.prefix = prefix;
    c.setAttribute("hx-ext", "sse");
    c.setAttribute("sse-close", "end");
    c.setAttribute("sse-connect", box.dataset.streamUrl + "&prefix=" + encodeURIComponent(prefix));
    var swap = document.createElement("div");
    swap.setAttribute("sse-swap", "row,gone,missed,status,unavailable");
    c.appendChild(swap);
    var note = document.createElement("div");
    note.id = "follow-notice";
    note.dataset.testid = "follow-notice";
    var area = document.getElementById("live-follow");
    area.appendChild(c);
    area.insertAdjacentElement("afterend", note);
    htmx.process(c);
    setState(box, "connecting…");
  }

  // the filter box swaps the results for another prefix: follow that one instead
  document.addEventListener("htmx:afterSettle", function () {
    var box = document.querySelector(".js-live-follow");
    var c = document.getElementById("follow-connector");
    var results = document.getElementById("keys-results");
    if (box && box.checked && c && results && c.dataset.prefix !== (results.dataset.prefix || "")) {
      follow(box);
    }
  });
  document.addEventListener("htmx:afterSettle", function () { applyFilters(); });
  // --- key and edit pages hold a stream only while their tab is shown -----------------------
  // Over HTTP/1.1 (a kubectl port-forward) a browser opens at most six connections to the
  // dashboard: six background key tabs, each holding a stream, would stall every other
  // page. A hidden key or edit page closes its stream; shown again, it reconnects, and the
  // server says at once whether the key changed meanwhile (the stream's `seen` token).
  function reconnect(c) {
    var holder = document.createElement("template");
    holder.innerHTML = c.outerHTML;
    var fresh = holder.content.firstElementChild;
    fresh.dataset.state = "";
    c.replaceWith(fresh);
    htmx.process(fresh);
  }

  document.addEventListener("visibilitychange", function () {
    document.querySelectorAll('.js-live-connector[data-mode="key"], .js-live-connector[data-mode="edit"]')
      .forEach(function (c) {
        if (document.hidden) {
          if (c.dataset.state === "paused") { return; }
          c.dataset.state = "paused";
          closeSources(c);
        } else if (c.dataset.state === "paused") {
          reconnect(c);
        }
      });
  });
})();

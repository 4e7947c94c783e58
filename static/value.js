// The key page's JSON tree (templates/keys/_value_tree.html, dashboard/web/value_views.py):
// "Expand all" / "Collapse all", and on each node "Copy path" (JSONPath, as RedisJSON takes
// it: $.items[2].name) and "Copy value" (the node's value as indented JSON).
//
// Everything is read from the page: each node's data-seg is its step in the path, each
// leaf's text (or its data-json, where the page shows escapes of hidden characters) is its
// JSON. Folding is <details>, so it works without this file; the copy buttons are added
// here, since without JavaScript they could do nothing.
(function () {
  "use strict";

  function button(kind, label, testid) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "jt-act " + kind;
    // the label is drawn by value.css (::before): selecting and copying the tree's text
    // never takes "Copy path" along
    b.setAttribute("aria-label", label);
    b.setAttribute("data-testid", testid);
    return b;
  }

  // One pair of buttons per node, before its <details> (a button inside a <summary> would
  // be a control inside a control), shown beside the node's first line (value.css).
  function enhance(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var trees = Array.prototype.slice.call(scope.querySelectorAll(".jt"));
    if (scope.classList && scope.classList.contains("jt")) { trees.push(scope); }
    trees.forEach(function (tree) {
      if (tree.dataset.enhanced === "true") { return; }
      tree.dataset.enhanced = "true";
      var pair = document.createElement("span");
      pair.className = "jt-acts";
      pair.appendChild(button("jt-copy-path", "Copy path", "copy-path"));
      pair.appendChild(button("jt-copy-value", "Copy value", "copy-node-value"));
      tree.querySelectorAll(".jt-node").forEach(function (node) {
        node.insertBefore(pair.cloneNode(true), node.firstChild);
      });
      var holder = tree.closest(".json-tree");
      var tools = holder && holder.querySelector(".js-tree-tools");
      if (tools) { tools.hidden = false; }
    });
  }

  function pathOf(node) {
    var steps = [];
    for (var n = node; n; n = n.parentElement && n.parentElement.closest(".jt-node")) {
      steps.unshift(n.dataset.seg || "");
    }
    return "$" + steps.join("");
  }

  // A member's name as JSON, from its path step: .name or ["any name"]
  function nameOf(node) {
    var seg = node.dataset.seg || "";
    return seg.charAt(0) === "." ? JSON.stringify(seg.slice(1)) : seg.slice(1, -1);
  }

  function leafJson(node) {
    var value = node.querySelector(":scope > .jt-v");
    if (!value) { return ""; }
    return value.hasAttribute("data-json") ? value.getAttribute("data-json") : value.textContent;
  }

  // The node's value as JSON indented by two spaces, as the page's JSON view writes it
  // (depth is bounded: the page lays out at most 32 levels)
  function jsonOf(node, depth) {
    if (node.classList.contains("jt-leaf")) { return leafJson(node); }
    var isObject = node.classList.contains("jt-obj");
    var kids = node.querySelector(":scope > details > .jt-kids");
    var pad = new Array(depth + 2).join("  ");
    var parts = [];
    Array.prototype.forEach.call(kids ? kids.children : [], function (kid) {
      if (!kid.classList.contains("jt-node")) { return; }
      parts.push(pad + (isObject ? nameOf(kid) + ": " : "") + jsonOf(kid, depth + 1));
    });
    var brackets = isObject ? "{}" : "[]";
    if (!parts.length) { return brackets; }
    return brackets[0] + "\n" + parts.join(",\n") + "\n" + new Array(depth + 1).join("  ") +
      brackets[1];
  }

  // navigator.clipboard needs a secure context (https, localhost); a dashboard served over
  // plain http elsewhere copies through a selected, off-screen textarea instead
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.className = "jt-clip";
    area.setAttribute("readonly", "");
    area.setAttribute("aria-hidden", "true");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (ignored) { copied = false; }
    area.remove();
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function writeClipboard(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  function say(node, message) {
    var holder = node.closest(".json-tree");
    var status = holder && holder.querySelector(".jt-status");
    if (status) { status.textContent = message; }
  }

  function copy(trigger) {
    var node = trigger.closest(".jt-node");
    if (!node) { return; }
    var path = pathOf(node);
    var isPath = trigger.classList.contains("jt-copy-path");
    var text = isPath ? path : jsonOf(node, 0);
    writeClipboard(text).then(function () {
      trigger.dataset.state = "copied";
      say(node, isPath ? "Copied the path " + path
                       : "Copied the value of " + path + " (" + text.length + " characters)");
      setTimeout(function () { delete trigger.dataset.state; }, 1500);
    }, function () {
      say(node, "The browser refused to copy: select the text instead.");
    });
  }

  document.addEventListener("click", function (event) {
    var trigger = event.target.closest(".jt-copy-path, .jt-copy-value");
    if (trigger) {
      copy(trigger);
      return;
    }
    var all = event.target.closest(".js-tree-all");
    if (all) {
      var holder = all.closest(".json-tree");
      var open = all.dataset.open === "true";
      if (holder) { holder.querySelectorAll(".jt details").forEach(function (d) { d.open = open; }); }
    }
  });

  // the page, and whatever htmx swaps in later (the live view reloads #key-state)
  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  document.addEventListener("htmx:load", function (event) { enhance(event.detail && event.detail.elt); });
})();

// Keyboard shortcuts (listed in the "?" overlay, <dialog id="shortcuts"> in base.html):
//   /        focus the page's main box (the element marked data-shortcut-focus)
//   j / k    highlight the next / previous key row, scrolled into view
//   Enter    open the highlighted row's key
//   e        edit: the key page's Edit link, or the highlighted row's key (editors only)
//   Esc      close the overlay, or leave the field being typed in
//   ?        open the overlay
// None fires while typing in a field (except Esc) or with Ctrl, Alt or Meta held. Rows are
// looked up at each key press, so rows htmx appends later ("Next 100 keys") are included.
(function () {
  "use strict";

  var ROWS = '[data-testid="key-row"], [data-testid="hit-row"], [data-testid="mget-row"]';
  var CURRENT = "kb-current";

  function dialog() { return document.getElementById("shortcuts"); }

  function typing(element) {
    if (!element || element === document.body) { return false; }
    if (element.isContentEditable) { return true; }
    var tag = element.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") { return true; }
    if (tag !== "INPUT") { return false; }
    // a checkbox, radio or button takes no text: shortcuts still work there
    return !/^(checkbox|radio|button|submit|reset|file|image|range|color)$/i.test(element.type);
  }

  function visible(element) { return element.getClientRects().length > 0; }

  function rows() {
    return Array.prototype.filter.call(document.querySelectorAll(ROWS), visible);
  }

  function current() {
    var row = document.querySelector("tr." + CURRENT);
    return row && visible(row) ? row : null;
  }

  // the key's own link: in its td.key cell, else (the folder view) the row's first link
  function keyLink(row) {
    return row && (row.querySelector("td.key a[href]") || row.querySelector("a[href]"));
  }

  function highlight(row) {
    document.querySelectorAll("." + CURRENT).forEach(function (old) {
      old.classList.remove(CURRENT);
      old.removeAttribute("aria-current");
    });
    row.classList.add(CURRENT);
    row.setAttribute("aria-current", "true");
    // focus the key's link, so a screen reader says which key, and Enter follows it
    var link = keyLink(row);
    if (link) { link.focus({preventScroll: true}); }
    row.scrollIntoView({block: "nearest"});
  }

  function move(step) {
    var list = rows();
    if (!list.length) { return false; }
    var at = list.indexOf(current());
    var next = at < 0 ? (step > 0 ? 0 : list.length - 1)
                      : Math.min(Math.max(at + step, 0), list.length - 1);
    highlight(list[next]);
    return true;
  }

  function focusMainBox() {
    var boxes = Array.prototype.filter.call(document.querySelectorAll("[data-shortcut-focus]"), visible);
    if (!boxes.length) { return false; }
    var box = boxes[0];
    box.focus();
    try {  // the caret after what is there: type on to narrow, or edit it
      box.setSelectionRange(box.value.length, box.value.length);
    } catch (ignored) { /* an input type without a caret */ }
    return true;
  }

  function openRow() {
    var link = keyLink(current());
    if (!link) { return false; }
    window.location.assign(link.href);
    return true;
  }

  function edit() {
    var here = document.querySelector('[data-testid="edit"][href]');
    if (here) {
      window.location.assign(here.href);
      return true;
    }
    // a highlighted row: its key's edit page, for an operator who may edit (the edit page
    // itself refuses what cannot be edited in the browser, with the reason)
    var base = document.body.dataset.editUrl;
    var link = keyLink(current());
    if (!base || !link) { return false; }
    window.location.assign(base + new URL(link.href, window.location.href).search);
    return true;
  }

  function openHelp() {
    var overlay = dialog();
    if (!overlay || overlay.open) { return false; }
    overlay.showModal();
    return true;
  }

  function closeHelp() {
    var overlay = dialog();
    if (!overlay || !overlay.open) { return false; }
    overlay.close();
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.isComposing || event.ctrlKey || event.altKey || event.metaKey) {
      return;
    }
    var target = event.target;
    if (event.key === "Escape") {
      if (closeHelp()) {
        event.preventDefault();
      } else if (typing(target)) {
        // leave the field as it is (a search box would otherwise be cleared and re-run)
        event.preventDefault();
        target.blur();
      }
      return;
    }
    var overlay = dialog();
    if ((overlay && overlay.open) || typing(target)) { return; }
    var done = false;
    switch (event.key) {
      case "/": done = focusMainBox(); break;
      case "j": done = move(1); break;
      case "k": done = move(-1); break;
      case "e": done = edit(); break;
      case "?": done = openHelp(); break;
      case "Enter":
        // a focused link, button or form control answers Enter itself
        if (!target.closest || !target.closest("a[href], button, input, select, textarea, summary, [role=button]")) {
          done = openRow();
        }
        break;
      default: return;
    }
    if (done) { event.preventDefault(); }
  });

  function outside(element, event) {
    var box = element.getBoundingClientRect();
    return event.clientX < box.left || event.clientX > box.right ||
           event.clientY < box.top || event.clientY > box.bottom;
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest(".js-shortcuts")) {
      openHelp();
    } else if (event.target.closest(".js-shortcuts-close")) {
      closeHelp();
    } else if (event.target === dialog() && outside(event.target, event)) {
      closeHelp();  // a click on the backdrop
    }
  });

  document.querySelectorAll(".js-shortcuts").forEach(function (hint) { hint.hidden = false; });
})();

// The browse page's rows sorted on screen by key, TTL or size, as RedisInsight and Tiny RDM
// do: the column headers become buttons (aria-sort on the header says the order). Only the
// rows loaded so far are sorted, never a new listing: "Next" appends rows and they take
// their place, the "Next" row staying last. The choice is in the URL (sort=, order=), so a
// reload, "Next" and the filter keep it.
(function () {
  "use strict";

  var SORTS = ["key", "ttl", "size"];
  var ORDERS = ["asc", "desc"];
  var arrived = 0;  // rows numbered as they arrive: the listing's order, and ties
  var current = fromQuery(window.location.search);

  function fromQuery(search) {
    var params = new URLSearchParams(search);
    var sort = params.get("sort");
    if (SORTS.indexOf(sort) < 0) { return {sort: null, order: "asc"}; }
    var order = params.get("order");
    return {sort: sort, order: ORDERS.indexOf(order) < 0 ? "asc" : order};
  }

  // ``url`` with its sort and order replaced by the current ones (or removed, ``sorted``
  // false); the rest of the query is kept as it was written
  function withSort(url, sorted) {
    var hash = url.indexOf("#");
    var fragment = hash < 0 ? "" : url.slice(hash);
    var rest = hash < 0 ? url : url.slice(0, hash);
    var mark = rest.indexOf("?");
    var path = mark < 0 ? rest : rest.slice(0, mark);
    var parts = (mark < 0 ? "" : rest.slice(mark + 1)).split("&").filter(function (part) {
      return part && !/^(sort|order)=/.test(part);
    });
    if (current.sort && sorted !== false) {
      parts.push("sort=" + current.sort, "order=" + current.order);
    }
    return path + (parts.length ? "?" + parts.join("&") : "") + fragment;
  }

  function table() { return document.querySelector('table[data-testid="keys-table"]'); }

  function browsePath() {
    var form = document.querySelector("form.filter");
    return form ? new URL(form.action, window.location.href).pathname : null;
  }

  // --- what a row sorts by: null when unknown (last in both orders) -----------------------

  function sizeOf(row) {
    var size = row.getAttribute("data-size");
    return size === null || size === "" ? null : Number(size);
  }

  function ttlOf(row) {
    var cell = row.querySelector("td.ttl");
    var ttl = cell && cell.getAttribute("data-ttl-ms");
    if (ttl === "none") { return Infinity; }  // no expiry: after every finite TTL
    if (ttl === null || ttl === "" || ttl === "unknown") { return null; }
    var ms = Number(ttl);
    return isNaN(ms) ? null : ms;
  }

  function valueOf(sort) {
    if (sort === "size") { return sizeOf; }
    if (sort === "ttl") { return ttlOf; }
    return function (row) { return row.getAttribute("data-key"); };
  }

  // items are {value, seq}: unknown values last in both orders, ties in the listing's order
  function compare(order) {
    var sign = order === "desc" ? -1 : 1;
    return function (a, b) {
      var x = a.value, y = b.value;
      if (x === null || y === null) {
        if (x !== y) { return x === null ? 1 : -1; }
      } else if (x < y) {
        return -sign;
      } else if (x > y) {
        return sign;
      }
      return a.seq - b.seq;
    };
  }

  // --- the rows ---------------------------------------------------------------------------

  function apply(restore) {
    var grid = table();
    var body = grid && grid.tBodies[0];
    if (!body) { return; }
    var value = current.sort ? valueOf(current.sort) : function () { return 0; };
    var rows = [], others = [];
    Array.prototype.forEach.call(body.rows, function (row) {
      if (row.getAttribute("data-testid") !== "key-row") { others.push(row); return; }
      if (!row.hasAttribute("data-seq")) { row.setAttribute("data-seq", String(arrived++)); }
      rows.push({row: row, seq: Number(row.getAttribute("data-seq")), value: value(row)});
    });
    if (!current.sort && !restore) { return; }  // the listing's order, as it came
    rows.sort(compare(current.order));
    var order = rows.map(function (item) { return item.row; }).concat(others);
    var moved = order.some(function (row, i) { return body.rows[i] !== row; });
    if (!moved) { return; }
    var fragment = document.createDocumentFragment();
    order.forEach(function (row) { fragment.appendChild(row); });
    body.appendChild(fragment);  // the "Next" and "end" rows last, as they were
  }

  // the headers: buttons, and aria-sort on the one the rows are sorted by
  function headers() {
    var grid = table();
    if (!grid) { return; }
    grid.querySelectorAll("th[data-sort]").forEach(function (th) {
      var button = th.querySelector("button.sort");
      if (!button) {
        button = document.createElement("button");
        button.type = "button";
        button.className = "sort";
        button.setAttribute("data-testid", "sort-" + th.getAttribute("data-sort"));
        button.textContent = th.textContent;
        th.textContent = "";
        th.appendChild(button);
      }
      var name = th.getAttribute("data-sort");
      if (name === current.sort) {
        th.setAttribute("aria-sort", current.order === "desc" ? "descending" : "ascending");
      } else {
        th.removeAttribute("aria-sort");
      }
      button.title = name === current.sort && current.order === "asc"
        ? "Sort by " + button.textContent + ", descending"
        : name === current.sort ? "Back to the listing's order" : "Sort by " + button.textContent;
    });
  }

  // links that open a browse page carry the sort too (a middle click, no JavaScript later)
  function links() {
    document.querySelectorAll('a[data-testid="first-page"], a[data-testid="next-page"]')
      .forEach(function (link) { link.setAttribute("href", withSort(link.getAttribute("href"))); });
  }

  function refresh(restore) {
    headers();
    apply(restore);
    links();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("th[data-sort] > button.sort");
    if (!button || !button.closest('table[data-testid="keys-table"]')) { return; }
    var name = button.parentElement.getAttribute("data-sort");
    // ascending, descending, then the listing's order again
    if (current.sort !== name) {
      current = {sort: name, order: "asc"};
    } else if (current.order === "asc") {
      current = {sort: name, order: "desc"};
    } else {
      current = {sort: null, order: "asc"};
    }
    refresh(true);
    window.history.replaceState(window.history.state, "", withSort(window.location.href));
  });

  // htmx requests for browse pages ("Next", the filter) carry the sort: the server keeps
  // it in the next links and the address it puts in the bar
  document.addEventListener("htmx:configRequest", function (event) {
    var detail = event.detail;
    if (detail.verb !== "get" || !detail.path) { return; }
    if (detail.path.split(/[?#]/)[0] !== browsePath()) { return; }
    detail.path = withSort(detail.path, false);
    delete detail.parameters.sort;
    delete detail.parameters.order;
    if (current.sort) {  // after the request's own parameters
      detail.parameters.sort = current.sort;
      detail.parameters.order = current.order;
    }
  });

  // appended rows (a next page), a new listing (the filter): sort again, once per swap
  // (htmx fires afterSwap on each new row)
  var pending = false;
  document.addEventListener("htmx:afterSwap", function () {
    if (pending) { return; }
    pending = true;
    Promise.resolve().then(function () {
      pending = false;
      refresh(false);
    });
  });

  // Back or Forward to a page htmx kept: its address says how it was sorted
  document.addEventListener("htmx:historyRestore", function () {
    current = fromQuery(window.location.search);
    refresh(true);
  });

  refresh(false);
})();

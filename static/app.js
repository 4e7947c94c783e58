// Small behaviours, no inline scripts (the page must run under a strict CSP).
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var copy = event.target.closest(".js-copy");
    if (copy) {
      // the exact stored bytes, fetched: the page shows an escaped, bounded rendering
      if (navigator.clipboard && copy.dataset.copyUrl) {
        fetch(copy.dataset.copyUrl, {credentials: "same-origin"})
          .then(function (answer) { return answer.text(); })
          .then(function (text) { return navigator.clipboard.writeText(text); })
          .then(function () {
            copy.textContent = "Copied";
            setTimeout(function () { copy.textContent = "Copy value"; }, 1500);
          });
      }
      return;
    }
    var toggle = event.target.closest(".js-toggle");
    if (toggle) {
      document.querySelector(toggle.dataset.show).hidden = false;
      document.querySelector(toggle.dataset.hide).hidden = true;
      toggle.parentElement.querySelectorAll(".js-toggle").forEach(function (b) {
        b.setAttribute("aria-pressed", b === toggle ? "true" : "false");
      });
    }
  });

  // An empty key pattern is no pattern: keep "match=" out of the URL the filter pushes.
  document.addEventListener("htmx:configRequest", function (event) {
    var params = event.detail.parameters;
    var form = event.detail.elt && event.detail.elt.closest && event.detail.elt.closest("form.filter");
    if (form && params && params.match === "") { delete params.match; }
  });

  // Typing a TTL means "set a TTL": select that choice so it is not silently ignored.
  document.addEventListener("input", function (event) {
    if (event.target.name === "ttl") {
      var set = event.target.form && event.target.form.querySelector('input[name="ttl_mode"][value="set"]');
      if (set && event.target.value) { set.checked = true; }
    }
  });

  // A form that must be sent once (an import's confirmation): its buttons are disabled
  // once it is submitted, so a double click sends one request (the server refuses a second).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches && form.matches("form[data-submit-once]") && !event.defaultPrevented) {
      setTimeout(function () {  // after the browser has collected the form's data
        form.querySelectorAll("button[type=submit]").forEach(function (b) {
          b.disabled = true;
          b.setAttribute("aria-busy", "true");
        });
      }, 0);
    }
  });
})();

// An htmx request that got no answer from the dashboard itself (it restarted, the
// ingress answered 502/504, the network dropped): htmx swaps nothing by default, so a
// polling page would look frozen. Say so, and clear it when a request gets through.
(function () {
  "use strict";
  var BANNER_ID = "connection-error";

  function show(text) {
    var flash = document.getElementById("flash");
    if (!flash) { return; }
    var banner = document.getElementById(BANNER_ID);
    if (!banner) {
      banner = document.createElement("div");
      banner.id = BANNER_ID;
      banner.className = "banner error";
      banner.setAttribute("role", "alert");
      banner.dataset.testid = BANNER_ID;
      flash.appendChild(banner);
    }
    banner.textContent = text;  // text only: nothing from the answer is parsed as HTML
  }

  // A lazily loaded cell (a service's count) whose request got no answer: it says so and
  // offers a retry, instead of "counting…" for ever.
  function lazyFailed(elt, text) {
    if (!elt || !elt.matches || !elt.matches("td.lazy") || !elt.getAttribute("hx-get")) { return; }
    var state = elt.querySelector(".js-lazy-state");
    if (!state) { return; }
    state.textContent = "count failed: " + text + " ";
    state.className = "error-text js-lazy-state";
    elt.dataset.testid = "service-count-failed";
    var retry = document.createElement("a");
    retry.href = elt.getAttribute("hx-get");
    retry.textContent = "retry";
    retry.dataset.testid = "retry-count";
    retry.addEventListener("click", function (click) {
      click.preventDefault();
      state.textContent = "counting… ";
      state.className = "muted js-lazy-state";
      htmx.ajax("GET", elt.getAttribute("hx-get"), {source: elt, target: elt, swap: "outerHTML"});
    });
    state.appendChild(retry);
  }

  document.addEventListener("htmx:sendError", function (event) {
    lazyFailed(event.detail.elt, "the dashboard did not answer");
  });
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    lazyFailed(event.detail.elt, "HTTP " + status);
  });

  document.addEventListener("htmx:sendError", function () {
    show("The dashboard did not answer (it may be restarting, or the network dropped). " +
         "Nothing new is shown until it answers; pages that update themselves keep trying.");
  });
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    show("The request failed with HTTP " + status + " before reaching the dashboard " +
         "(a proxy or ingress answered). Pages that update themselves keep trying.");
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful) {
      var banner = document.getElementById(BANNER_ID);
      if (banner) { banner.remove(); }
    }
  });
})();

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

  // Typing a TTL means "set a TTL": select that choice so it is not silently ignored.
  document.addEventListener("input", function (event) {
    if (event.target.name === "ttl") {
      var set = event.target.form && event.target.form.querySelector('input[name="ttl_mode"][value="set"]');
      if (set && event.target.value) { set.checked = true; }
    }
  });
})();

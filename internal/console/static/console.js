// Keyhold console: small progressive enhancements. Every page works
// without this file; the CSP allows no inline script, so all behaviour
// lives here and is bound through data- attributes.
(function () {
  "use strict";
  function on(sel, ev, fn) {
    document.querySelectorAll(sel).forEach(function (el) { el.addEventListener(ev, fn); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    // Copy-to-clipboard for ids, commands and revealed values.
    on("button[data-copy], button[data-copy-from]", "click", function (e) {
      var b = e.currentTarget;
      var text = b.dataset.copy;
      if (b.dataset.copyFrom) {
        var src = document.getElementById(b.dataset.copyFrom);
        text = src ? src.textContent : "";
      }
      if (!navigator.clipboard) { return; }
      navigator.clipboard.writeText(text).then(function () {
        var old = b.textContent;
        b.textContent = "Copied";
        setTimeout(function () { b.textContent = old; }, 1500);
      });
    });
    // "Go back" links.
    on("a[data-back]", "click", function (e) {
      if (history.length > 1) { e.preventDefault(); history.back(); }
    });
    // Select every row of a list.
    on("input[data-select-all]", "change", function (e) {
      var form = e.currentTarget.form;
      form.querySelectorAll("input[name=" + e.currentTarget.dataset.selectAll + "]").forEach(function (c) {
        c.checked = e.currentTarget.checked;
      });
    });
    // A typed confirmation unlocks its submit button (the server checks
    // the typed text again).
    on("input[data-confirm]", "input", function (e) {
      var i = e.currentTarget;
      var btn = document.getElementById(i.dataset.confirmButton);
      if (btn) { btn.disabled = i.value !== i.dataset.confirm; }
    });
    document.querySelectorAll("input[data-confirm]").forEach(function (i) {
      var btn = document.getElementById(i.dataset.confirmButton);
      if (btn) { btn.disabled = i.value !== i.dataset.confirm; }
    });
    // Forms that ask before doing something irreversible.
    on("form[data-ask]", "submit", function (e) {
      if (!window.confirm(e.currentTarget.dataset.ask)) { e.preventDefault(); }
    });
    // Policy editor: say at once when the JSON does not parse (the server
    // validates the policy language itself).
    on("textarea[data-json]", "input", function (e) {
      var t = e.currentTarget;
      var out = document.getElementById(t.dataset.json);
      if (!out) { return; }
      try { JSON.parse(t.value); out.textContent = ""; t.removeAttribute("aria-invalid"); }
      catch (err) { out.textContent = "Not valid JSON: " + err.message; t.setAttribute("aria-invalid", "true"); }
    });
  });
})();

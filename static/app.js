/* Ollama IntelliProxy dashboard: small progressive enhancements. No inline scripts (the CSP forbids them). */
(function () {
  "use strict";

  var flashTimer = null;

  function flash(message) {
    var box = document.getElementById("flash");
    if (!box) { return; }
    box.textContent = message;            // text, never HTML: error texts come from outside
    box.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(function () { box.hidden = true; }, 8000);
  }

  function localiseTimes(root) {
    var times = root.querySelectorAll ? root.querySelectorAll("time[data-local]") : [];
    times.forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) { return; }
      el.title = el.textContent;
      el.textContent = el.dataset.local === "date" ? when.toLocaleString() : when.toLocaleTimeString();
    });
  }

  function copyFrom(button) {
    var source = document.getElementById(button.dataset.copy);
    if (!source) { return; }
    var text = source.innerText;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { flash("Could not copy: select the text instead."); });
    } else {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      try { document.execCommand("copy"); done(); } catch (e) { flash("Press Ctrl+C to copy the selected text."); }
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy");
    if (button) { copyFrom(button); }
  });

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var text = (xhr.responseText || "").trim();
    if (text.charAt(0) === "<") { text = ""; }
    flash("The server refused that (" + xhr.status + ")" + (text ? ": " + text.slice(0, 300) : "."));
  });

  document.addEventListener("htmx:sendError", function () {
    flash("The dashboard is not answering: is the proxy running?");
  });

  document.addEventListener("DOMContentLoaded", function () {
    localiseTimes(document);
    if (window.htmx) {
      window.htmx.onLoad(function (el) { localiseTimes(el); });
    }
  });
})();

/* esimota console: live regions and confirmations. No library; the server escapes every value. */
"use strict";
(function () {
  function follow(el) {
    var url = el.getAttribute("data-live");
    var every = parseInt(el.getAttribute("data-every") || "2000", 10);
    var busy = false;
    function tick() {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(url, {headers: {"X-Console-Live": "1"}, credentials: "same-origin", cache: "no-store"})
        .then(function (r) {
          if (r.status === 401) { el.setAttribute("data-signed-out", "1"); clearInterval(timer); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined) { el.innerHTML = html; el.setAttribute("data-updated", String(Date.now())); }
        })
        .catch(function () { /* the next tick tries again */ })
        .then(function () { busy = false; });
    }
    var timer = setInterval(tick, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-live]"), follow);
    document.addEventListener("submit", function (ev) {
      var msg = ev.target.getAttribute("data-confirm");
      if (msg && !window.confirm(msg)) { ev.preventDefault(); }
    });
  });
})();

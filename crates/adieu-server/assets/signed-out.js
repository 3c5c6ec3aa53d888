// The signed-out page's live status (served at /assets/signed-out.js; the page's CSP allows
// scripts and fetches from the provider itself only). While an application is still being told,
// it reads the status address in `data-status` once a second, for up to a minute, and updates each
// application's badge in place; the list is `aria-live`, so screen readers hear the change.
(function () {
  "use strict";
  var note = document.getElementById("live-note");
  if (!note || !note.dataset.status) { return; }
  var url = note.dataset.status, tries = 0;
  function show(s) {
    s.apps.forEach(function (a) {
      document.querySelectorAll("ul.apps li[data-app]").forEach(function (li) {
        if (li.dataset.app !== a.id) { return; }
        var b = li.querySelector(".badge");
        if (b && b.textContent !== a.status) { b.className = "badge " + a.state; b.textContent = a.status; }
      });
    });
    if (s.done) {
      note.textContent = "Every application has now been told, or has been given up on.";
    } else if (++tries < 60) {
      setTimeout(tick, 1000);
    }
  }
  function tick() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) { if (s) { show(s); } })
      .catch(function () { if (++tries < 60) { setTimeout(tick, 2000); } });
  }
  setTimeout(tick, 1000);
})();

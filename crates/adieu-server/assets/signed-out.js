// The signed-out page's script (served at /assets/signed-out.js; the page's CSP allows scripts and
// fetches from the provider itself, and frames from the front-channel applications' origins only).
//
// Back channel: while an application is still being told, it reads the status address in
// `data-status` once a second, for up to a minute, and updates each application's badge in place.
// Front channel: it loads each application's front-channel logout frame (`data-src`; a <noscript>
// copy loads it without JavaScript), marks the application "Signed out" when the frame has loaded
// or "Could not be told" after `data-wait` milliseconds, and then follows the "Continue" link if
// the page has one. The list is `aria-live`, so screen readers hear the changes. The texts it
// writes come from the page's `data-` attributes, in the page's language.
(function () {
  "use strict";
  function badge(id, state, text) {
    document.querySelectorAll("ul.apps li[data-app]").forEach(function (li) {
      if (li.dataset.app !== id) { return; }
      var b = li.querySelector(".badge");
      if (b && b.textContent !== text) { b.className = "badge " + state; b.textContent = text; }
    });
  }

  function backChannel(note) {
    var url = note.dataset.status, tries = 0;
    var front = {};
    document.querySelectorAll("iframe.fc[data-app]").forEach(function (f) { front[f.dataset.app] = true; });
    function show(s) {
      s.apps.forEach(function (a) { if (!front[a.id]) { badge(a.id, a.state, a.status); } });
      if (s.done) {
        note.textContent = note.dataset.done;
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
  }

  function frontChannel(note) {
    var frames = document.querySelectorAll("iframe.fc[data-src]");
    var wait = Number(note.dataset.wait) || 5000, left = frames.length, failed = 0;
    function settled(ok) {
      if (!ok) { failed++; }
      if (--left > 0) { return; }
      note.textContent = failed === 0 ? note.dataset.allTold : note.dataset.someFailed;
      var go = document.getElementById("continue");
      if (go) { window.location.assign(go.href); }
    }
    frames.forEach(function (f) {
      var done = false;
      var timer = setTimeout(function () {
        if (done) { return; }
        done = true;
        badge(f.dataset.app, "failed", note.dataset.failed);
        settled(false);
      }, wait);
      f.addEventListener("load", function () {
        if (done) { return; }
        done = true;
        clearTimeout(timer);
        badge(f.dataset.app, "ok", note.dataset.told);
        settled(true);
      });
      f.src = f.dataset.src;
    });
  }

  var live = document.getElementById("live-note");
  if (live && live.dataset.status) { backChannel(live); }
  var fc = document.getElementById("frames-note");
  if (fc) { frontChannel(fc); }
})();

// dingtalk-bridge console: the little the pages need from a script. Pages work without it
// (forms post, links navigate); with it, live pages refresh their <main> and forms that ask
// for it confirm first. No library: a few dozen lines do not earn one.
"use strict";

(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  // Live pages (<main data-live="ms">) fetch themselves again and swap <main>, while visible.
  function live() {
    const main = document.getElementById("main");
    const every = main && Number(main.dataset.live);
    if (!every) return;
    let busy = false;
    setInterval(async () => {
      if (busy || document.hidden) return;
      if (main.contains(document.activeElement) && document.activeElement.tagName !== "BODY") return;
      busy = true;
      try {
        const answer = await fetch(location.href, { credentials: "same-origin" });
        if (answer.status === 303 || answer.redirected) { location.reload(); return; }
        if (!answer.ok) return;
        const page = new DOMParser().parseFromString(await answer.text(), "text/html");
        const fresh = page.getElementById("main");
        if (fresh) main.innerHTML = fresh.innerHTML;
        main.dispatchEvent(new CustomEvent("console:refreshed"));
      } catch (_) {
        // the daemon restarts or the network blinks: the next round tries again
      } finally {
        busy = false;
      }
    }, every);
  }

  // <form data-confirm="question">: asked before it posts.
  document.addEventListener("submit", (event) => {
    const question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  window.consoleApi = async function (path, body) {
    const answer = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf(), "Accept": "application/json" },
      body: JSON.stringify(body),
    });
    const data = await answer.json().catch(() => ({ error: answer.statusText }));
    if (!answer.ok) throw new Error(data.error || answer.statusText);
    return data;
  };

  document.addEventListener("DOMContentLoaded", live);
})();

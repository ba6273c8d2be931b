// The Silences page: while matchers are typed, ask the daemon (debounced) which firing alerts
// they would silence, and list them under the form. The preview only reads; the form posts as
// without a script.
"use strict";

(function () {
  const WAIT_MS = 300;

  function show(box, data) {
    box.replaceChildren();
    const say = (text, cls) => {
      const p = document.createElement("p");
      p.textContent = text;
      if (cls) p.className = cls;
      box.appendChild(p);
    };
    for (const problem of data.problems || []) say(problem, "error");
    for (const note of data.notes || []) say(note, "dim");
    if ((data.problems || []).length) return;
    if (!data.count) { say(box.dataset.none, "none"); return; }
    say(box.dataset.count.replace("%(count)s", data.count).replace("%(firing)s", data.firing), "count");
    const list = document.createElement("ul");
    list.className = "alerts";
    for (const alert of data.alerts) {
      const item = document.createElement("li");
      item.dataset.alert = alert.id;
      const id = document.createElement("code");
      id.textContent = alert.id;
      item.appendChild(id);
      for (const [name, value] of Object.entries(alert.labels)) {
        const label = document.createElement("code");
        label.className = "matcher";
        label.textContent = `${name}="${value}"`;
        item.append(" ", label);
      }
      if (alert.rules.length) item.append(" → " + alert.rules.join(", "));
      list.appendChild(item);
    }
    box.appendChild(list);
  }

  function start() {
    const field = document.getElementById("matchers");
    const box = document.getElementById("preview");
    if (!field || !box) return;
    let timer = null;
    let asked = 0;
    const ask = async () => {
      const mine = ++asked;
      let data;
      try {
        data = await window.consoleApi(box.dataset.api, { matchers: field.value });
      } catch (error) {
        data = { problems: [error.message] };
      }
      if (mine === asked) show(box, data); // an older answer arriving late is dropped
    };
    field.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(ask, WAIT_MS);
    });
    if (field.value.trim()) ask();
  }

  document.addEventListener("DOMContentLoaded", start);
})();

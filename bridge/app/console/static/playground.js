// dingtalk-bridge console: the playground. Each edit (after 300 ms of quiet) posts the input,
// payload, rule and template to /api/playground/render, which acts on nothing, and shows what
// comes back: the pipeline's verdicts, each message's parts as DingTalk shows them (HTML made
// and escaped by the server's chatview), sizes, and problems next to the text they are in.
// No library: the DOM API is enough for a form and a list.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let inputs = [];
  let base = "";
  let words = {};
  let timer = null;
  let asked = 0; // only the newest answer is shown

  const say = (key, values) =>
    (words[key] || key).replace(/%\((\w+)\)s/g, (_, name) => String(values?.[name] ?? ""));

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function current() {
    return inputs.find((i) => i.name === $("pg-input").value) || null;
  }

  function request() {
    const edits = $("pg-rule").value && $("playground").dataset.edit === "yes";
    return {
      input: $("pg-input").value,
      payload: $("pg-payload").value,
      rule: $("pg-rule").value,
      rule_yaml: edits ? $("pg-rule-yaml").value : null, // a viewer tries the rules as written
      template: edits ? $("pg-template").value : null,
    };
  }

  async function loadSamples() {
    const input = current();
    const select = $("pg-sample");
    while (select.options.length > 1) select.remove(1);
    if (!input) return;
    const answer = await fetch(`${base}/api/playground/samples?input=${encodeURIComponent(input.name)}`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!answer.ok) return;
    const data = await answer.json();
    data.samples.forEach((sample, index) => {
      const option = el("option", "", sample.label);
      option.value = String(index);
      option.dataset.text = sample.text;
      select.add(option);
    });
    if (!$("pg-payload").value && data.samples.length) {
      select.value = "0";
      $("pg-payload").value = data.samples[0].text;
    }
  }

  function fillRules() {
    const input = current();
    const select = $("pg-rule");
    select.textContent = "";
    (input ? input.rules : []).forEach((rule) => {
      const option = el("option", "", rule.name);
      option.value = rule.name;
      select.add(option);
    });
    fillRule();
  }

  function fillRule() {
    const input = current();
    const rule = input && input.rules.find((r) => r.name === $("pg-rule").value);
    $("pg-rule-yaml").value = rule ? rule.yaml : "";
    $("pg-template").value = rule ? rule.template : "";
  }

  function showProblems(problems) {
    const lists = { rule: $("pg-rule-problems"), template: $("pg-template-problems") };
    for (const list of [lists.rule, lists.template, $("pg-other-problems")]) list.textContent = "";
    for (const p of problems) {
      const list = lists[p.where] || $("pg-other-problems");
      const where = [p.line ? say("data-line", { n: p.line }) : "", p.path].filter(Boolean).join(" · ");
      const item = el("li", "error");
      if (where) item.append(el("strong", "", where + ": "));
      item.append(document.createTextNode(p.message));
      if (p.hint) item.append(el("span", "dim", " (" + p.hint + ")"));
      list.append(item);
    }
  }

  function showMessages(messages) {
    const box = $("pg-messages");
    box.textContent = "";
    const template = $("pg-message-template");
    messages.forEach((message, index) => {
      const node = template.content.firstElementChild.cloneNode(true);
      node.dataset.index = String(index);
      node.dataset.target = message.target;
      node.querySelector(".pg-head").textContent = `${message.rule} → ${message.target} (${message.type})`;
      const parts = node.querySelector(".pg-parts");
      if (message.unsendable) parts.append(el("div", "error", message.unsendable));
      message.parts.forEach((part, n) => {
        const block = el("div", "pg-part");
        const meta = el("div", "pg-meta");
        if (message.parts.length > 1) meta.append(el("span", "pill pg-partno", say("data-part", { n: n + 1, of: message.parts.length })));
        const over = part.limit && part.bytes > part.limit;
        const size = part.limit
          ? say("data-bytes", { size: part.bytes, limit: part.limit })
          : say("data-bytes-nolimit", { size: part.bytes });
        const counter = el("span", "pill pg-bytes" + (over ? " bad" : ""), size + (over ? " · " + say("data-over") : ""));
        counter.dataset.bytes = String(part.bytes);
        meta.append(counter);
        if (part.mentions.length) meta.append(el("span", "pill", say("data-pings") + " " + part.mentions.join(", ")));
        block.append(meta);
        const chat = el("div", "pg-chat");
        chat.innerHTML = part.html; // made by the server's chatview: every value escaped
        block.append(chat);
        for (const problem of part.problems) block.append(el("div", "error", problem));
        const details = el("details", "pg-body");
        details.append(el("summary", "", say("data-body")), el("pre", "", part.body));
        block.append(details);
        parts.append(block);
      });
      box.append(node);
    });
    if (!messages.length) box.append(el("p", "dim", say("data-nothing")));
  }

  async function render() {
    const mine = ++asked;
    $("pg-status").textContent = say("data-working");
    try {
      const data = await window.consoleApi(`${base}/api/playground/render`, request());
      if (mine !== asked) return;
      showProblems(data.problems);
      const decisions = $("pg-decisions");
      decisions.textContent = "";
      for (const line of [data.notice, data.state_problem, ...data.decisions].filter(Boolean)) decisions.append(el("li", "", line));
      showMessages(data.messages);
      $("pg-status").textContent = say(data.problems.length ? "data-problems" : "data-done");
      $("playground").dataset.rendered = String(mine);
    } catch (error) {
      if (mine === asked) $("pg-status").textContent = error.message;
    }
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(render, 300);
  }

  async function send(button, path) {
    const node = button.closest(".pg-message");
    const answer = node.querySelector(".pg-answer");
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    button.disabled = true;
    answer.textContent = "…";
    try {
      const data = await window.consoleApi(`${base}${path}?message=${node.dataset.index}`, request());
      answer.className = "pg-answer " + (data.ok ? "ok" : "error");
      answer.textContent = data.errcode === undefined || data.errcode === null
        ? data.error || ""
        : `${say("data-sent")}: errcode ${data.errcode}, errmsg ${data.errmsg ?? ""}${data.ok ? "" : " " + (data.error || "")}`;
    } catch (error) {
      answer.className = "pg-answer error";
      answer.textContent = error.message;
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const root = $("playground");
    if (!root) return;
    base = root.dataset.base;
    if (root.dataset.edit !== "yes") for (const id of ["pg-rule-yaml", "pg-template"]) $(id).readOnly = true;
    inputs = JSON.parse($("playground-inputs").textContent);
    words = { ...$("pg-words").dataset };
    Object.keys(words).forEach((k) => { words["data-" + k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())] = words[k]; });
    $("pg-input").addEventListener("change", async () => {
      $("pg-payload").value = "";
      fillRules();
      await loadSamples();
      soon();
    });
    $("pg-sample").addEventListener("change", (event) => {
      const option = event.target.selectedOptions[0];
      if (option && option.dataset.text !== undefined) $("pg-payload").value = option.dataset.text;
      soon();
    });
    $("pg-rule").addEventListener("change", () => { fillRule(); soon(); });
    for (const id of ["pg-payload", "pg-rule-yaml", "pg-template"]) $(id).addEventListener("input", soon);
    $("pg-messages").addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      if (button.classList.contains("pg-simulator")) send(button, "/api/playground/simulator");
      if (button.classList.contains("pg-send")) send(button, "/api/playground/send");
    });
    fillRules();
    await loadSamples();
    render();
  });
})();

// The sample browser. Data arrive base64(gzip(JSON)) in an inert script element and are decoded the
// first time the browser is opened. Everything is written with textContent: no sample text is ever HTML.
"use strict";
(function () {
  const details = document.getElementById("sample-browser");
  const source = document.getElementById("sample-data");
  if (!details || !source) return;
  const PAGE = 50;
  let data = null;
  let shown = PAGE;

  const load = () => evalsuite.unpack(source);
  const el = evalsuite.el;

  function options(select, values, labels) {
    select.replaceChildren();
    values.forEach((value, i) => {
      const option = el("option", labels ? labels[i] : value);
      option.value = String(value);
      select.appendChild(option);
    });
  }

  // row: [model, task, doc, prompt, target, choices, generation, filtered, loglikelihood, metrics, error, variant]
  function correct(row) {
    const metric = data.primary[data.tasks[row[1]]];
    const value = row[9][metric];
    return value === undefined ? null : value >= 1;
  }

  function answer(row) {
    if (row[5]) {
      let best = -1, bestScore = -Infinity;
      row[5].forEach((c, i) => { if (c[1] !== null && c[1] > bestScore) { best = i; bestScore = c[1]; } });
      return String(best);
    }
    return row[7] !== null ? row[7] : row[6];
  }

  function selected() {
    const task = Number(document.getElementById("f-task").value);
    const model = Number(document.getElementById("f-model").value);
    const show = document.getElementById("f-show").value;
    const pair = data.pairs[Number(document.getElementById("f-pair").value)] || null;
    const byKey = new Map();
    for (const row of data.rows) byKey.set(row[0] + "|" + row[1] + "|" + row[2] + "|" + row[11], row);
    const out = [];
    for (const row of data.rows) {
      if (row[1] !== task) continue;
      if (show === "flips" || show === "disagree") {
        if (!pair || data.models[row[0]] !== pair[0]) continue;
        const other = byKey.get(data.models.indexOf(pair[1]) + "|" + row[1] + "|" + row[2] + "|" + row[11]);
        if (!other) continue;
        const differs = show === "flips" ? correct(row) !== correct(other) : answer(row) !== answer(other);
        if (differs) { out.push(row); out.push(other); }
        continue;
      }
      if (row[0] !== model) continue;
      if (show === "errors" && row[10] === null) continue;
      if (show === "wrong" && correct(row) !== false) continue;
      out.push(row);
    }
    return out;
  }

  function folded(label, text) {
    const box = el("details");
    const summary = el("summary", label + " (" + text.length.toLocaleString() + " characters)");
    box.appendChild(summary);
    box.addEventListener("toggle", () => {
      if (box.open && box.childNodes.length === 1) box.appendChild(el("div", text, "text"));
    }, { once: true });
    return box;
  }

  function textBlock(label, text) {
    if (text.length > 600) return folded(label, text);
    const wrap = el("div");
    wrap.appendChild(el("div", label, "muted"));
    wrap.appendChild(el("div", text, "text"));
    return wrap;
  }

  function card(row) {
    const box = el("div", null, "sample");
    const ok = correct(row);
    const head = data.models[row[0]] + " · " + data.tasks[row[1]] + " · doc " + row[2] +
      (row[11] !== "original" ? " · " + row[11] : "") + (ok === null ? "" : ok ? " · correct" : " · wrong");
    box.appendChild(el("div", head, "head"));
    box.appendChild(textBlock("prompt", data.prompts[row[3]]));
    if (row[5]) {
      const table = el("table");
      const header = el("tr");
      ["choice", "log-likelihood", "greedy"].forEach((h) => header.appendChild(el("th", h)));
      table.appendChild(header);
      row[5].forEach((c) => {
        const tr = el("tr");
        tr.appendChild(el("td", c[0]));
        tr.appendChild(el("td", c[1] === null ? "—" : c[1].toFixed(4), "num"));
        tr.appendChild(el("td", c[2] ? "yes" : ""));
        table.appendChild(tr);
      });
      box.appendChild(table);
    }
    if (row[6] !== null) box.appendChild(textBlock("generation", row[6]));
    if (row[7] !== null && row[7] !== row[6]) box.appendChild(textBlock("filtered", row[7]));
    if (row[8] !== null) box.appendChild(el("div", "log-likelihood " + row[8].toFixed(3), "muted"));
    box.appendChild(textBlock("target", row[4]));
    const metrics = Object.entries(row[9]).map(([k, v]) => k + " = " + v).join(", ");
    if (metrics) box.appendChild(el("div", metrics, "muted"));
    if (row[10] !== null) box.appendChild(textBlock("error", row[10]));
    return box;
  }

  function render() {
    const rows = selected();
    const list = document.getElementById("sample-list");
    list.replaceChildren(...rows.slice(0, shown).map(card));
    document.getElementById("f-count").textContent =
      Math.min(shown, rows.length).toLocaleString() + " of " + rows.length.toLocaleString() + " shown";
    document.getElementById("f-more").disabled = shown >= rows.length;
  }

  details.addEventListener("toggle", async () => {
    if (!details.open || data) return;
    document.getElementById("f-count").textContent = "loading…";
    data = await load();
    options(document.getElementById("f-task"), data.tasks.map((_, i) => i), data.tasks);
    options(document.getElementById("f-model"), data.models.map((_, i) => i), data.models);
    options(document.getElementById("f-pair"), data.pairs.map((_, i) => i), data.pairs.map((p) => p[0] + " → " + p[1]));
    for (const id of ["f-task", "f-model", "f-show", "f-pair"]) {
      document.getElementById(id).addEventListener("change", () => { shown = PAGE; render(); });
    }
    document.getElementById("f-more").addEventListener("click", () => { shown += PAGE; render(); });
    render();
  });
})();

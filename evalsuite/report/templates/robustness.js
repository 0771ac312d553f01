// The robustness example browser. Data arrive base64(gzip(JSON)) in an inert script element and are
// decoded the first time the browser is opened. Every string is written with textContent: never as HTML.
"use strict";
(function () {
  const details = document.getElementById("robustness-examples");
  const source = document.getElementById("robustness-data");
  if (!details || !source) return;
  let data = null;

  const load = () => evalsuite.unpack(source);
  const el = evalsuite.el;

  // Non-ASCII characters of a change, as code points: a homoglyph looks the same but is named here.
  function codePoints(text) {
    const odd = Array.from(text).filter((c) => c.codePointAt(0) > 0x7e);
    return odd.map((c) => "U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")).join(" ");
  }

  // One side of the diff: unchanged text plus this side's changes (deletions left, insertions right).
  function side(label, diff, kind) {
    const wrap = el("div");
    wrap.appendChild(el("div", label, "muted"));
    const box = el("div", null, "text");
    for (const [k, text] of diff) {
      if (k === "equal") box.appendChild(document.createTextNode(text));
      else if (k === kind) {
        const mark = el("span", text, kind === "delete" ? "rx-del" : "rx-ins");
        const points = codePoints(text);
        mark.title = (kind === "delete" ? "removed" : "added") + (points ? ": " + points : "");
        box.appendChild(mark);
      }
    }
    wrap.appendChild(box);
    return wrap;
  }

  function answer(label, a) {
    if (!a) return label + ": —";
    const score = a[1] === null ? "no score" : "score " + a[1];
    return label + ": " + (a[0] === null ? "—" : a[0]) + " (" + score + (a[2] ? ", error: " + a[2] : "") + ")";
  }

  function card(x) {
    const box = el("div", null, "sample rx-example");
    const head = el("div", x.model + " · " + x.unit + " · doc " + x.doc + " · " + x.variant + " ", "head");
    if (x.flip) head.appendChild(el("span", "flip", "badge fail"));
    box.appendChild(head);
    const pair = el("div", null, "rx-pair");
    pair.appendChild(side("original", x.diff, "delete"));
    pair.appendChild(side("perturbed", x.diff, "insert"));
    box.appendChild(pair);
    box.appendChild(el("div", answer("clean answer", x.clean) + " → " + answer("perturbed answer", x.perturbed)));
    if (x.details) box.appendChild(el("div", x.details, "muted"));
    return box;
  }

  function render() {
    const unit = data.units[Number(document.getElementById("rx-unit").value)];
    const flipsOnly = document.getElementById("rx-show").value === "flips";
    const rows = data.examples.filter((x) => x.unit === unit && (!flipsOnly || x.flip));
    document.getElementById("rx-list").replaceChildren(...rows.map(card));
    document.getElementById("rx-count").textContent = rows.length + " shown";
  }

  details.addEventListener("toggle", async () => {
    if (!details.open || data) return;
    document.getElementById("rx-count").textContent = "loading…";
    data = await load();
    const select = document.getElementById("rx-unit");
    data.units.forEach((unit, i) => {
      const option = el("option", unit);
      option.value = String(i);
      select.appendChild(option);
    });
    for (const id of ["rx-unit", "rx-show"]) document.getElementById(id).addEventListener("change", render);
    render();
  });
})();

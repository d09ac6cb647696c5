"use strict";
(function () {
  const data = JSON.parse(document.getElementById("ecad-data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const W = 660, H = 430, M = { left: 80, right: 18, top: 16, bottom: 48 };
  const points = data.points;
  const state = { generation: data.generations.length - 1, xMode: "speedup", selected: null, population: true };
  const plot = document.getElementById("plot");
  const tooltip = document.getElementById("tooltip");
  const details = document.getElementById("details");

  // One precision per kind of number, in every table: quality 4 decimals, cost fraction 3, speedups 2.
  const fixed = (v, digits) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  const quality = (v) => fixed(v, 4);
  const fraction = (v) => fixed(v, 3);
  const times = (v) => (v === null || v === undefined ? "–" : `${fixed(v, 2)}×`);
  const xOf = (p) => (state.xMode === "speedup" ? 1 / p.cost : p.cost);
  const xTitle = () => (state.xMode === "speedup"
    ? `${data.run.cost_label} speedup (no caching = 1×)` : `${data.run.cost_label} cost (fraction of no caching)`);
  const label = (p) => (p.name && p.file ? `${p.name} (${p.file})` : p.name || p.file || `schedule ${p.id}`);
  const suggested = (p) => p.key === data.run.suggested;

  function el(tag, attrs, parent, ns) {
    const node = ns ? document.createElementNS(SVG, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    if (parent) parent.appendChild(node);
    return node;
  }
  const svg = (tag, attrs, parent) => el(tag, attrs, parent, true);

  function ticks(lo, hi, count) {
    const span = hi - lo || Math.abs(hi) || 1;
    const raw = span / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || 10 * mag;
    const decimals = Math.min(12, Math.max(0, -Math.floor(Math.log10(step))));
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
      out.push({ value: v, label: v.toFixed(decimals) });
    }
    return out;
  }

  function range(values) {
    let lo = Math.min(...values), hi = Math.max(...values);
    const pad = (hi - lo) * 0.06 || Math.abs(hi) * 0.05 || 0.05;
    return [lo - pad, hi + pad];
  }

  function visible() {
    const gen = data.generations[state.generation];
    const roles = new Map();
    if (state.population) gen.population.forEach((id) => roles.set(id, "pop"));
    gen.front.forEach((id) => roles.set(id, "front"));
    data.baselines.forEach((id) => roles.set(id, "base"));
    return { gen, roles };
  }

  function draw() {
    const { gen, roles } = visible();
    plot.replaceChildren();
    const [x0, x1] = range(points.map(xOf));
    const [y0, y1] = range(points.map((p) => p.quality));
    const sx = (v) => M.left + ((v - x0) / (x1 - x0)) * (W - M.left - M.right);
    const sy = (v) => H - M.bottom - ((v - y0) / (y1 - y0)) * (H - M.top - M.bottom);
    const grid = svg("g", { class: "grid" }, plot), axis = svg("g", { class: "axis" }, plot);
    for (const t of ticks(x0, x1, 8)) {
      svg("line", { x1: sx(t.value), x2: sx(t.value), y1: M.top, y2: H - M.bottom }, grid);
      svg("text", { x: sx(t.value), y: H - M.bottom + 16, "text-anchor": "middle", text: t.label }, axis);
    }
    for (const t of ticks(y0, y1, 7)) {
      svg("line", { x1: M.left, x2: W - M.right, y1: sy(t.value), y2: sy(t.value) }, grid);
      svg("text", { x: M.left - 6, y: sy(t.value) + 4, "text-anchor": "end", text: t.label }, axis);
    }
    svg("path", { d: `M${M.left},${M.top}V${H - M.bottom}H${W - M.right}`, fill: "none" }, axis);
    svg("text", { class: "axis-title", x: (M.left + W - M.right) / 2, y: H - 10, "text-anchor": "middle",
      text: xTitle() }, plot);
    svg("text", { class: "axis-title", transform: `translate(14,${(M.top + H - M.bottom) / 2}) rotate(-90)`,
      "text-anchor": "middle", text: `quality (${data.run.metric})` }, plot);
    const line = gen.front.map((id) => points[id]).sort((a, b) => xOf(a) - xOf(b));
    svg("polyline", { class: "front-line", points: line.map((p) => `${sx(xOf(p))},${sy(p.quality)}`).join(" ") }, plot);
    const order = ["pop", "front", "base"], labels = [];
    const ids = [...roles.keys()].sort((a, b) => order.indexOf(roles.get(a)) - order.indexOf(roles.get(b)));
    for (const id of ids) {
      const p = points[id], role = roles.get(id), x = sx(xOf(p)), y = sy(p.quality);
      const cls = `pt ${role}${state.selected === id ? " selected" : ""}`;
      const node = role === "base"
        ? svg("path", { class: cls, d: `M${x},${y - 6}L${x + 6},${y}L${x},${y + 6}L${x - 6},${y}Z` }, plot)
        : svg("circle", { class: cls, cx: x, cy: y, r: role === "front" ? 5 : 3.5 }, plot);
      node.dataset.id = id;
      node.addEventListener("mouseenter", (e) => showTooltip(p, e));
      node.addEventListener("mousemove", (e) => showTooltip(p, e));
      node.addEventListener("mouseleave", () => { tooltip.hidden = true; });
      node.addEventListener("click", () => select(id));
      if (role === "base") labels.push({ x, y, text: p.name });
    }
    placeLabels(labels);
    document.getElementById("generation-label").textContent =
      `${gen.index} of ${data.generations[data.generations.length - 1].index}`;
    document.getElementById("front-title").textContent =
      `after generation ${gen.index} (${gen.front.length} schedules, hypervolume ${quality(gen.hypervolume)})`;
    frontTable(gen);
  }

  // Baseline labels beside their diamonds, each with a leader line to its own: a label that would overlap a diamond, a
  // front point or a label placed before it moves away in steps, alternately above and below, as near its diamond as
  // the others allow.
  function placeLabels(labels) {
    const boxes = [...plot.querySelectorAll(".pt.base, .pt.front")].map((node) => node.getBBox());
    const overlaps = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
    const inside = (b) => b.y >= M.top && b.y + b.height <= H - M.bottom;
    labels.sort((a, b) => b.y - a.y || a.x - b.x).forEach((l) => {
      const leader = svg("line", { class: "base-leader", x1: l.x, y1: l.y, x2: l.x, y2: l.y }, plot);
      const node = svg("text", { class: "base-label", x: l.x + 8, y: l.y - 6, text: l.text }, plot);
      if (node.getBBox().x + node.getBBox().width > W - M.right) {  // past the plot's right edge: on the left
        node.setAttribute("x", l.x - 8);
        node.setAttribute("text-anchor", "end");
      }
      for (let i = 0; i < 80; i++) {
        node.setAttribute("y", l.y - 6 - 11 * Math.ceil(i / 2) * (i % 2 ? -1 : 1));
        const box = node.getBBox();
        if (inside(box) && !boxes.some((b) => overlaps(box, b))) break;
      }
      const box = node.getBBox();
      boxes.push(box);
      leader.setAttribute("x2", node.getAttribute("text-anchor") === "end" ? box.x + box.width : box.x);
      leader.setAttribute("y2", box.y + box.height / 2);
    });
  }

  function showTooltip(p, event) {
    const box = document.getElementById("plot-area").getBoundingClientRect();
    tooltip.textContent = `${label(p)} · quality ${quality(p.quality)} · cost ${fraction(p.cost)} · ` +
      `${times(1 / p.cost)} · first seen in generation ${p.generation}`;
    tooltip.style.left = `${event.clientX - box.left + 12}px`;
    tooltip.style.top = `${event.clientY - box.top + 12}px`;
    tooltip.hidden = false;
  }

  function table(id, columns, rows, onClick, isSelected) {
    const node = document.getElementById(id);
    const head = node.tHead, body = node.tBodies[0];
    head.replaceChildren();
    body.replaceChildren();
    const tr = el("tr", {}, head);
    columns.forEach((c) => el("th", { text: c[0] }, tr));
    rows.forEach((row) => {
      const r = el("tr", {}, body);
      if (isSelected(row)) r.classList.add("selected");
      columns.forEach((c) => el("td", { text: c[1](row) }, r));
      r.addEventListener("click", () => onClick(row));
    });
  }

  function frontTable(gen) {
    table("front-table", [
      ["file", (p) => p.file || "–"], ["schedule", (p) => p.name || `schedule ${p.id}`],
      [`quality (${data.run.metric})`, (p) => quality(p.quality)], ["cost", (p) => fraction(p.cost)],
      [`${data.run.cost_label} speedup`, (p) => times(1 / p.cost)],
      ["recompute", (p) => `${(100 * p.recompute).toFixed(1)}%`], ["first generation", (p) => p.generation],
      ["sample images", (p) => p.samples.length], ["suggested", (p) => (suggested(p) ? "★" : "")],
    ], gen.front.map((id) => points[id]), (p) => select(p.id), (p) => p.id === state.selected);
  }

  function showDetails(title, facts, picture, samples, missing, command) {
    details.replaceChildren();
    el("h3", { text: title }, details);
    const t = el("table", {}, details);
    facts.forEach(([k, v]) => { const r = el("tr", {}, t); el("td", { text: k }, r); el("td", { text: v }, r); });
    if (command) {
      el("p", { text: "Use it:" }, details);
      el("pre", { class: "command", text: command }, details);
    }
    const pic = el("div", { class: "schedule-picture" }, details);
    el("img", { src: picture, alt: "schedule", title: "rows: component × block; columns: steps; blue recompute, grey reuse, orange forecast" }, pic);
    el("p", { text: `Schedule: one column per denoising step, one row per block, blocks grouped by component ` +
      `(top to bottom: ${data.run.components.join(", ")}); blue = recompute, grey = reuse the cached output.` }, pic);
    if (samples.length) {
      el("h3", { text: "Sample images" }, details);
      const grid = el("div", { class: "samples" }, details);
      samples.forEach((s) => {
        const fig = el("figure", {}, grid);
        el("img", { class: "sample", src: s.src, alt: s.caption }, fig);
        el("figcaption", { text: s.caption }, fig);
      });
    } else {
      el("p", { class: "note", text: missing }, details);
    }
  }

  function select(id) {
    state.selected = id;
    const p = points[id];
    showDetails(label(p) + (suggested(p) ? " ★ suggested" : ""), [
      ["file", p.file || "not on the final front: no schedule file"],
      [`quality (${data.run.metric})`, quality(p.quality)], ["cost (fraction)", fraction(p.cost)],
      [`${data.run.cost_label} speedup`, times(1 / p.cost)],
      ["recomputes", `${(100 * p.recompute).toFixed(1)}% of the components`],
      ["first generation", p.generation], ["key", p.key.slice(0, 24) + "…"],
    ], p.picture, p.samples, data.missing_samples, p.command);
    draw();
  }

  function evalTable() {
    const ev = data.eval;
    if (!ev) return;
    document.getElementById("eval-section").hidden = false;
    document.getElementById("eval-summary").textContent = ev.summary;
    document.getElementById("eval-plot").src = ev.plot_png;
    const columns = [
      ["#", (r) => r.index], ["schedule", (r) => r.name], ["family", (r) => r.family],
      ["recompute", (r) => `${(100 * r.recompute).toFixed(1)}%`],
      ["MAC speedup", (r) => times(r.macs_speedup)],
      ["latency s", (r) => fixed(r.latency, 3)], ["measured speedup", (r) => times(r.speedup)],
      ...ev.metric_columns.map((c) => [c, (r) => quality(r.metrics[c])]),
    ];
    const open = (r) => {
      state.selected = null;
      showDetails(`${r.name} (held-out evaluation)`,
        [["source", r.source], ...columns.slice(2).map(([k, f]) => [k, f(r)])],
        r.picture, r.samples, "This evaluation stored no images for this schedule.");
      draw();
    };
    table("eval-table", columns, ev.rows, open, () => false);
  }

  const slider = document.getElementById("generation");
  slider.max = data.generations.length - 1;
  slider.value = state.generation;
  slider.addEventListener("input", () => { state.generation = +slider.value; draw(); });
  document.getElementById("x-mode").addEventListener("change", (e) => { state.xMode = e.target.value; draw(); });
  document.getElementById("show-population").addEventListener("change", (e) => {
    state.population = e.target.checked; draw();
  });
  document.getElementById("summary").textContent = data.run.summary;
  const notes = document.getElementById("notes");
  data.run.notes.forEach((text) => el("p", { class: "note", text }, notes));
  document.getElementById("footnote").textContent = data.footnote;
  const hv = document.getElementById("hypervolume");
  if (data.hypervolume_png) hv.src = data.hypervolume_png; else document.getElementById("hv-section").hidden = true;
  evalTable();
  draw();
})();

// main.js: wires the page: the prompt picker, the metric selector, the tooltip (hover
// shows, click pins, Esc unpins), the target and summary charts, and the first-paint mark
// (window.logitlensPaintedAt, in performance.now() milliseconds, and
// <html data-painted="true">) that the browser tests wait for.

(function () {
  const $ = (id) => document.getElementById(id);
  performance.mark("logitlens-start");
  const reports = LL.readReports($("logitlens-data"));
  performance.mark("logitlens-parsed");
  const state = { index: 0, metric: "entropy", metrics: [], hover: null };
  const grid = new LL.Grid($("grid-panel"), $("grid-canvas"), $("grid-scroll"), $("grid-space"));
  const tooltip = $("tooltip");
  window.logitlens = { reports: reports, state: state, grid: grid };

  /** An element with a class and text, or children. */
  function h(tag, cls, ...children) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const c of children) e.append(c);
    return e;
  }

  const report = () => reports[state.index];

  function showPrompt(index) {
    state.index = index;
    const r = report();
    const model = String(r.model).replace(/\/+$/, "").split("/").pop();
    $("title").textContent = "logitlens: " + model;
    const parts = [
      r.tokens.length + " tokens",
      r.layers.length + " rows",
      r.final_norm === false ? "raw hidden states (no final norm)" : "through the final norm",
    ];
    if (r.top_k !== undefined) parts.push("top-" + r.top_k);
    if (r.first_layer !== null && r.first_layer !== undefined) parts.push("final prediction first at layer " + r.first_layer + ", settled from " + r.settled_layer);
    $("subtitle").textContent = "Prompt" + (r.prompt_id ? " " + r.prompt_id : "") + ": " + LL.quote(r.prompt) + "\n" + parts.join(" \u00b7 ");
    $("footer").textContent = r.provenance ? "provenance: " + JSON.stringify(r.provenance) : "";
    state.metrics = LL.metrics(reports, r);
    const select = $("metric");
    select.replaceChildren(...state.metrics.map((m) => {
      const o = h("option", null, m.label);
      o.value = m.key;
      return o;
    }));
    if (!state.metrics.some((m) => m.key === state.metric)) state.metric = "entropy";
    select.value = state.metric;
    unpin();
    grid.setReport(r);
    setMetric(state.metric);
    drawTargets();
  }

  function setMetric(key) {
    state.metric = key;
    const metric = state.metrics.find((m) => m.key === key);
    const domain = LL.domain(metric, reports, report());
    grid.setColors(metric, domain);
    LL.drawColorbar($("colorbar-canvas"), metric, domain);
    $("missing-legend").hidden = !(metric.key === "ce" || metric.key === "rank");
    grid.draw();
  }

  function tooltipBody(r, row, position) {
    const rows = r.layers;
    const cell = rows[row].positions[position];
    const site = LL.site(rows[row], row);
    const where = { embed: "embeddings", resid_mid: "after attention (resid_mid)", resid_post: row === rows.length - 1 ? "the model's output" : "block output (resid_post)" }[site] || site;
    const next = r.tokens[position + 1];
    const body = [
      h("div", "tt-head", "row " + LL.rowLabel(rows, row) + " \u00b7 position " + position),
      h("div", "tt-sub", where + "; input " + LL.quote(r.tokens[position].display) + " \u2192 next " + (next ? LL.quote(next.display) : "(none: last position)")),
    ];
    const top = cell.topk && cell.topk.length ? cell.topk : [{ id: cell.id, token: cell.token, prob: cell.prob }];
    const table = h("table", "tt-topk");
    top.forEach((t, i) => {
      const tr = h("tr", (i === 0 ? "argmax" : "") + (next && t.id === next.id ? " next" : ""));
      const bar = h("span", "bar");
      bar.style.width = Math.max(1, Math.round(t.prob * 90)) + "px";
      tr.append(h("td", "num", String(i + 1)), h("td", "tok", LL.quote(t.token)), h("td", "num", LL.fmt(t.prob)), h("td", null, bar));
      table.append(tr);
    });
    body.push(table);
    if (!cell.topk) body.push(h("div", "tt-foot", "argmax only: this report has no top-k"));
    const dl = h("dl");
    const add = (k, v) => dl.append(h("dt", null, k), h("dd", null, v));
    add("entropy", LL.fmt(cell.entropy) + " nats");
    add("max prob", LL.fmt(cell.prob));
    if (cell.kl !== undefined) add("KL to output", LL.fmt(cell.kl) + " nats");
    if (next) {
      if (cell.next_rank !== undefined && cell.next_rank !== null) {
        add("next token", "rank " + cell.next_rank + ", logprob " + LL.fmt(cell.next_logprob) + " (CE " + LL.fmt(-cell.next_logprob) + " nats)");
      } else {
        add("next token", cell.id === next.id ? "hit (argmax)" : "not the argmax");
      }
    }
    (r.targets || []).forEach((t, i) => {
      const v = cell.targets && cell.targets[i];
      if (v) add("target " + LL.quote(t.token), "p " + LL.fmt(v.prob) + ", logprob " + LL.fmt(v.logprob) + ", rank " + v.rank);
    });
    body.push(dl);
    body.push(h("div", "tt-foot", grid.pinned ? "pinned: click the cell again or press Esc to unpin" : "click to pin"));
    return body;
  }

  function showTooltip(row, position, clientX, clientY) {
    tooltip.replaceChildren(...tooltipBody(report(), row, position));
    tooltip.dataset.row = row;
    tooltip.dataset.position = position;
    tooltip.hidden = false;
    const pad = 14;
    const w = tooltip.offsetWidth;
    const ht = tooltip.offsetHeight;
    let x = clientX + pad;
    let y = clientY + pad;
    if (x + w > window.innerWidth - 4) x = Math.max(4, clientX - pad - w);
    if (y + ht > window.innerHeight - 4) y = Math.max(4, clientY - pad - ht);
    tooltip.style.left = x + "px";
    tooltip.style.top = y + "px";
  }

  function unpin() {
    if (!grid.pinned) return;
    grid.pinned = null;
    tooltip.classList.remove("pinned");
    tooltip.hidden = true;
    grid.draw();
  }

  const cellOf = (target) => (target && target.closest ? target.closest(".cell") : null);
  const scroller = $("grid-scroll");
  scroller.addEventListener("mousemove", (e) => {
    if (grid.pinned) return;
    const cell = cellOf(e.target);
    if (cell) showTooltip(+cell.dataset.row, +cell.dataset.position, e.clientX, e.clientY);
    else tooltip.hidden = true;
  });
  scroller.addEventListener("mouseleave", () => {
    if (!grid.pinned) tooltip.hidden = true;
  });
  document.addEventListener("click", (e) => {
    const cell = cellOf(e.target);
    if (!cell) {
      if (!tooltip.contains(e.target)) unpin();
      return;
    }
    const row = +cell.dataset.row;
    const position = +cell.dataset.position;
    if (grid.pinned && grid.pinned.row === row && grid.pinned.position === position) {
      unpin();
      showTooltip(row, position, e.clientX, e.clientY);
      return;
    }
    grid.pinned = { row: row, position: position };
    tooltip.classList.add("pinned");
    showTooltip(row, position, e.clientX, e.clientY);
    grid.draw();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") unpin();
  });
  scroller.addEventListener("scroll", () => {
    if (!grid.pinned) tooltip.hidden = true;
  }, { passive: true });

  function drawTargets() {
    const r = report();
    const figure = $("targets-figure");
    figure.hidden = !(r.targets && r.targets.length);
    if (figure.hidden) return;
    const scale = $("targets-scale").value;
    const series = LL.trajectories(r, scale);
    let hi = 1;
    if (scale === "rank") series.forEach((s) => s.values.forEach((v) => { if (v > hi) hi = v; }));
    const y = scale === "rank"
      ? { lo: 1, hi: Math.max(10, hi), log: true, label: "rank (log)" }
      : { lo: 0, hi: 1, log: false, label: "probability" };
    LL.lineChart($("targets-canvas"), r.layers.map((_, i) => LL.rowLabel(r.layers, i)), series, y);
  }

  function drawSummary() {
    if (reports.length < 2) return;
    $("summary-figure").hidden = false;
    $("summary-caption").textContent = "Per-row means over all " + reports.length + " prompts and their positions";
    const s = LL.summary(reports);
    const values = [];
    s.nats.forEach((series) => series.values.forEach((v) => { if (v !== null && isFinite(v)) values.push(v); }));
    values.sort((a, b) => a - b);
    const hi = values.length ? values[values.length - 1] : 1;
    const select = $("summary-scale");
    if (!select.dataset.chosen) {
      // One row far above the rest (often the embeddings' KL) would flatten every curve.
      const p90 = values.length ? values[Math.floor(values.length * 0.9)] : hi;
      select.value = hi > 3 * p90 ? "log" : "linear";
    }
    const positive = values.filter((v) => v > 0);
    const y = select.value === "log"
      ? { lo: Math.pow(10, Math.floor(Math.log10(positive.length ? positive[0] : 0.01))), hi: Math.max(hi, 1), log: true, label: "nats (log)" }
      : { lo: 0, hi: LL.niceCeil(hi || 1), log: false, label: "nats" };
    LL.lineChart($("summary-nats"), s.labels, s.nats, y);
    LL.lineChart($("summary-fractions"), s.labels, s.fractions, { lo: 0, hi: 1, log: false, label: "fraction" });
  }

  if (reports.length > 1) {
    $("prompt-control").hidden = false;
    const picker = $("prompt-picker");
    reports.forEach((r, i) => {
      const text = (r.prompt_id ? r.prompt_id + ": " : i + ": ") + r.prompt;
      const o = h("option", null, text.length > 80 ? text.slice(0, 79) + "\u2026" : text);
      o.value = i;
      picker.append(o);
    });
    picker.addEventListener("change", () => showPrompt(+picker.value));
  }
  $("metric").addEventListener("change", (e) => setMetric(e.target.value));
  $("targets-scale").addEventListener("change", drawTargets);
  $("summary-scale").addEventListener("change", (e) => {
    e.target.dataset.chosen = "true";
    drawSummary();
  });

  showPrompt(0);
  performance.mark("logitlens-grid");
  drawSummary();
  performance.mark("logitlens-charts");
  requestAnimationFrame(() => requestAnimationFrame(() => {
    window.logitlensPaintedAt = performance.now();
    document.documentElement.dataset.painted = "true";
  }));
})();

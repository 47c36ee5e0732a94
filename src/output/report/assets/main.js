// main.js: wires the page: the prompt picker, the metric selector, one grid per lens of
// the prompt shown (two side by side under --compare-lenses, sharing the metric and its
// colour scale, scrolling together), the tooltip (hover shows, click pins, Esc unpins),
// the target and summary charts, and the first-paint mark
// (window.logitlensPaintedAt, in performance.now() milliseconds, and
// <html data-painted="true">) that the browser tests wait for. Every label, scale, colour
// and summary value comes from the view (LL.readView); this file only wires and draws.

(function () {
  const $ = (id) => document.getElementById(id);
  performance.mark("logitlens-start");
  const reports = LL.readReports($("logitlens-data"));
  const view = LL.readView($("logitlens-view"));
  performance.mark("logitlens-parsed");
  const groups = view.groups;
  const lenses = [...new Set(reports.map((r) => r.lens))];
  const state = { index: 0, metric: "entropy", hover: null };
  const tooltip = $("tooltip");
  const grids = [];
  window.logitlens = { reports: reports, view: view, groups: groups, state: state, grids: grids };
  document.documentElement.style.setProperty("--no-value", view.palette.no_value);
  document.documentElement.style.setProperty("--hatch", view.palette.hatch);
  Object.defineProperty(window.logitlens, "grid", { get: () => grids[0] });

  /** An element with a class and text, or children. */
  function h(tag, cls, ...children) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const c of children) e.append(c);
    return e;
  }

  const group = () => groups[state.index].reports.map((i) => reports[i]);
  const report = () => group()[0];

  /**
   * One pane per lens: a title (shown with several lenses) over a grid. The first pane's
   * elements keep the ids of a one-lens page (grid-panel, grid-canvas, grid-scroll,
   * grid-space); every pane's have the classes.
   */
  function addPane() {
    const k = grids.length;
    const id = (name) => (k === 0 ? name : name + "-" + k);
    const part = (tag, cls) => {
      const e = h(tag, cls);
      e.id = id(cls);
      return e;
    };
    const title = h("h2", "grid-title");
    const panel = part("div", "grid-panel");
    const canvas = part("canvas", "grid-canvas");
    const scroll = part("div", "grid-scroll");
    const space = part("div", "grid-space");
    scroll.append(space);
    panel.append(canvas, scroll);
    const pane = h("div", "grid-pane", title, panel);
    $("grids").append(pane);
    const grid = new LL.Grid(panel, canvas, scroll, space, view);
    grid.title = title;
    grids.push(grid);
    // Side-by-side grids share their columns, so they scroll together.
    scroll.addEventListener("scroll", () => {
      for (const other of grids) {
        if (other !== grid && other.scroller.scrollLeft !== scroll.scrollLeft) other.scroller.scrollLeft = scroll.scrollLeft;
      }
      if (!pinned()) tooltip.hidden = true;
    }, { passive: true });
  }

  const pinned = () => grids.some((g) => g.pinned);

  function showPrompt(index) {
    state.index = index;
    const r = report();
    const parts = [
      r.tokens.length + " tokens",
      r.layers.length + " rows",
      r.final_norm === false ? "raw hidden states (no final norm)" : "through the final norm",
    ];
    if (r.top_k !== undefined) parts.push("top-" + r.top_k);
    const shown = group();
    if (shown.length > 1) parts.push(shown.map((o) => o.lens + " lens").join(" and ") + " side by side, on one colour scale");
    else if (r.first_layer !== null && r.first_layer !== undefined) parts.push("final prediction first at layer " + r.first_layer + ", settled from " + r.settled_layer);
    // A long prompt is collapsed to its head (the view's), so the first screen shows the grid.
    const { prompt, prompt_head: head } = view.reports[groups[index].reports[0]];
    const text = head === null ? LL.quote(prompt) : h("details", null, h("summary", null, LL.quote(head) + " (show all)"), LL.quote(prompt));
    $("subtitle").replaceChildren("Prompt" + (r.prompt_id ? " " + r.prompt_id : "") + ": ", text, "\n" + parts.join(" \u00b7 "));
    $("footer").textContent = r.provenance ? "provenance: " + JSON.stringify(r.provenance) : "";
    const metrics = groups[index].metrics;
    const select = $("metric");
    select.replaceChildren(...metrics.map((m) => {
      const o = h("option", null, m.title);
      o.value = m.key;
      return o;
    }));
    if (!metrics.some((m) => m.key === state.metric)) state.metric = "entropy";
    select.value = state.metric;
    unpin();
    while (grids.length < shown.length) addPane();
    grids.forEach((g, k) => {
      const mine = shown[k];
      g.panel.parentElement.hidden = !mine;
      if (!mine) return;
      g.title.hidden = shown.length < 2;
      const settled = mine.first_layer !== null && mine.first_layer !== undefined
        ? "final prediction first at layer " + mine.first_layer + ", settled from " + mine.settled_layer
        : "";
      g.title.replaceChildren(mine.lens + " lens", h("span", "note", settled));
      g.setReport(mine, groups[index].reports[k], shown);
    });
    setMetric(state.metric);
    drawTargets();
  }

  function setMetric(key) {
    state.metric = key;
    const metric = view.metrics.find((m) => m.key === key);
    const shown = groups[state.index].metrics.find((m) => m.key === key);
    LL.drawColorbar($("colorbar-canvas"), view.palette, shown.scale, shown.title);
    $("missing-legend").hidden = !shown.missing;
    $("missing-text").textContent = shown.missing || "";
    shownGrids().forEach((g, k) => {
      g.setColors(metric, shown.cells[k]);
      g.draw();
    });
  }

  const shownGrids = () => grids.slice(0, group().length);

  function tooltipBody(grid, row, position) {
    const r = grid.report;
    const rows = r.layers;
    const cell = rows[row].positions[position];
    const site = rows[row].site;
    const where = { embed: "embeddings", resid_mid: "after attention (resid_mid)", resid_post: row === rows.length - 1 ? "the model's output" : "block output (resid_post)" }[site] || site;
    const next = r.tokens[position + 1];
    const body = [
      h("div", "tt-head", (lenses.length > 1 || r.lens !== "logit" ? r.lens + " lens \u00b7 " : "") + "row " + grid.labels[row] + " \u00b7 position " + position),
      h("div", "tt-sub", where + "; input " + LL.quote(r.tokens[position].display) + " \u2192 next " + (next ? LL.quote(next.display) : "(none: last position)")),
    ];
    if (cell.nonfinite) {
      body.push(h("div", "tt-foot", "non-finite values (NaN or inf): no statistic of this cell is a result"));
      return body;
    }
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

  function showTooltip(grid, row, position, clientX, clientY) {
    tooltip.replaceChildren(...tooltipBody(grid, row, position));
    tooltip.dataset.lens = grid.lens;
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
    const was = grids.filter((g) => g.pinned);
    if (!was.length) return;
    was.forEach((g) => {
      g.pinned = null;
      g.draw();
    });
    tooltip.classList.remove("pinned");
    tooltip.hidden = true;
  }

  const cellOf = (target) => (target && target.closest ? target.closest(".cell") : null);
  /** The grid a cell element belongs to. */
  const gridOf = (cell) => grids.find((g) => g.space.contains(cell));
  const panes = $("grids");
  panes.addEventListener("mousemove", (e) => {
    if (pinned()) return;
    const cell = cellOf(e.target);
    const grid = cell && gridOf(cell);
    if (grid) showTooltip(grid, +cell.dataset.row, +cell.dataset.position, e.clientX, e.clientY);
    else tooltip.hidden = true;
  });
  panes.addEventListener("mouseleave", () => {
    if (!pinned()) tooltip.hidden = true;
  });
  document.addEventListener("click", (e) => {
    const cell = cellOf(e.target);
    const grid = cell && gridOf(cell);
    if (!grid) {
      if (!tooltip.contains(e.target)) unpin();
      return;
    }
    const row = +cell.dataset.row;
    const position = +cell.dataset.position;
    if (grid.pinned && grid.pinned.row === row && grid.pinned.position === position) {
      unpin();
      showTooltip(grid, row, position, e.clientX, e.clientY);
      return;
    }
    unpin();
    grid.pinned = { row: row, position: position };
    tooltip.classList.add("pinned");
    showTooltip(grid, row, position, e.clientX, e.clientY);
    grid.draw();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") unpin();
  });

  function drawTargets() {
    const g = groups[state.index];
    const figure = $("targets-figure");
    figure.hidden = !g.targets;
    if (figure.hidden) return;
    const chart = $("targets-scale").value === "rank" ? g.targets.rank : g.targets.prob;
    LL.lineChart($("targets-canvas"), view.reports[g.reports[0]].rows, chart);
  }

  function drawSummary() {
    // A batch's curves; with two lenses, one prompt's too (the tuned-lens paper's figure).
    const s = view.summary;
    if (!s) return;
    $("summary-figure").hidden = false;
    const over = groups.length === 1 ? "the prompt's positions" : "all " + groups.length + " prompts and their positions";
    const styles = s.lenses.length > 1 ? "; " + s.lenses.map((l, j) => (j === 0 ? "solid: " : "dashed: ") + l + " lens").join(", ") : "";
    $("summary-caption").textContent = "Per-row means over " + over + styles;
    LL.lineChart($("summary-nats"), s.rows, s.nats);
    LL.lineChart($("summary-fractions"), s.rows, s.fractions);
  }

  if (groups.length > 1) {
    $("prompt-control").hidden = false;
    const picker = $("prompt-picker");
    groups.forEach((g, i) => {
      const r = g.reports[0];
      const text = (r.prompt_id ? r.prompt_id + ": " : i + ": ") + r.prompt;
      const o = h("option", null, text.length > 80 ? text.slice(0, 79) + "\u2026" : text);
      o.value = i;
      picker.append(o);
    });
    picker.addEventListener("change", () => showPrompt(+picker.value));
  }
  $("metric").addEventListener("change", (e) => setMetric(e.target.value));
  $("targets-scale").addEventListener("change", drawTargets);

  showPrompt(0);
  performance.mark("logitlens-grid");
  drawSummary();
  performance.mark("logitlens-charts");
  requestAnimationFrame(() => requestAnimationFrame(() => {
    window.logitlensPaintedAt = performance.now();
    document.documentElement.dataset.painted = "true";
    // Firefox's dump(), which prints on its stdout only when the browser.dom.window.dump
    // pref is on (tests/firefox.rs turns it on; nobody else sees it). Chromium has none.
    if (typeof window.dump === "function") {
      const cells = document.querySelectorAll(".cell").length;
      window.dump(`logitlens: painted ${cells} cells\n`);
    }
  }));
})();

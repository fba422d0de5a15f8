// vllm-ranker ui: the evaluation view. The charts are a few SVG rects drawn here: no charting library.
import { $, api, el, showError } from "./common.js";

const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"];

function barsChart(report) {
  const width = 760, height = 280, left = 40, bottom = 30, top = 10;
  const groups = report.metrics.length, n = report.pipelines.length;
  const groupW = (width - left) / groups, barW = Math.min(36, (groupW * 0.8) / n);
  const y = (v) => top + (height - top - bottom) * (1 - Math.min(1, v));
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", id: "eval-bars", role: "img" });
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(el("svg:line", { x1: left, x2: width, y1: y(tick), y2: y(tick), class: "grid" }));
    svg.append(el("svg:text", { x: left - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end", text: tick.toFixed(2) }));
  }
  report.metrics.forEach((metric, g) => {
    const x0 = left + g * groupW + (groupW - barW * n) / 2;
    report.pipelines.forEach((p, i) => {
      const v = p.metrics[metric];
      const x = x0 + i * barW;
      svg.append(el("svg:rect", { x, y: y(v), width: barW - 2, height: y(0) - y(v), fill: COLORS[i % COLORS.length], class: "metric-bar", "data-pipeline": p.name, "data-metric": metric },
        el("svg:title", { text: `${p.name} ${metric}: ${v.toFixed(4)}` })));
      svg.append(el("svg:text", { x: x + barW / 2 - 1, y: y(v) - 3, class: "value", "text-anchor": "middle", text: v.toFixed(3) }));
    });
    svg.append(el("svg:text", { x: left + g * groupW + groupW / 2, y: height - 8, class: "axis metric", "text-anchor": "middle", text: metric }));
  });
  const legend = el("div", { class: "legend" }, ...report.pipelines.map((p, i) =>
    el("span", {}, el("i", { style: `background:${COLORS[i % COLORS.length]}` }), p.name)));
  return el("div", {}, svg, legend);
}

function pairChart(pair, metric) {
  const d = pair.by_metric[metric];
  const n = d.deltas.length || 1;
  const width = 760, height = 90, mid = 45;
  const maxAbs = Math.max(1e-9, ...d.deltas.map((q) => Math.abs(q.delta)));
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, class: "chart strip", preserveAspectRatio: "none" });
  svg.append(el("svg:line", { x1: 0, x2: width, y1: mid, y2: mid, class: "grid" }));
  d.deltas.forEach((q, i) => {
    const h = (Math.abs(q.delta) / maxAbs) * (mid - 4);
    const cls = q.delta > 1e-9 ? "win" : q.delta < -1e-9 ? "loss" : "tie";
    svg.append(el("svg:rect", { x: (i * width) / n, width: Math.max(1, width / n - 0.5), y: q.delta > 0 ? mid - h : mid, height: Math.max(cls === "tie" ? 1 : 0, h), class: cls },
      el("svg:title", { text: `query ${q.query}: ${q.before.toFixed(3)} → ${q.after.toFixed(3)}` })));
  });
  const total = d.wins + d.ties + d.losses || 1;
  const stack = el("div", { class: "stack" },
    el("span", { class: "win", style: `width:${(100 * d.wins) / total}%` }),
    el("span", { class: "tie", style: `width:${(100 * d.ties) / total}%` }),
    el("span", { class: "loss", style: `width:${(100 * d.losses) / total}%` }));
  return el("div", { class: "pair", "data-pair": pair.reranked },
    el("h3", { text: `${pair.reranked} vs ${pair.base} (${metric}, per query)` }),
    el("p", { class: "tally", text: `${d.wins} wins · ${d.ties} ties · ${d.losses} losses` }), stack, svg);
}

function renderReport(report, metric) {
  const out = $("eval-out");
  const head = el("h2", { text: `${report.collection}: ${report.split} split, ${report.queries} queries` });
  const parts = [head, barsChart(report)];
  metric = metric || (report.metrics.includes("nDCG@10") ? "nDCG@10" : report.metrics[0]);
  if (report.pairs.length) {
    // Wins and losses depend on the metric: let the reader switch (redrawn from the same report, no new request).
    const choose = el("select", { id: "pair-metric", onchange: (e) => renderReport(report, e.target.value) },
      ...report.metrics.map((m) => el("option", { value: m, text: m })));
    choose.value = metric;
    parts.push(el("label", { class: "pair-metric" }, "per-query wins and losses by ", choose));
    parts.push(...report.pairs.map((p) => pairChart(p, metric)));
  } else {
    parts.push(el("p", { class: "hint", text: "No per-query values for a first stage and its +rerank in this report: wins and losses cannot be drawn." }));
  }
  out.replaceChildren(...parts);
}

export async function loadReport() {
  const file = $("eval-file").files[0];
  if (!file) return;
  showError($("eval-error"), "");
  document.body.dataset.evalState = "loading";
  try {
    const text = await file.text();
    const report = await api("/api/eval", { method: "POST", headers: { "Content-Type": "application/json" }, body: text });
    renderReport(report);
    document.body.dataset.evalState = "done";
  } catch (e) {
    $("eval-out").replaceChildren();
    showError($("eval-error"), e.message);
    document.body.dataset.evalState = "error";
  }
}

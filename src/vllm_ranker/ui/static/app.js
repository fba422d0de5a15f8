// vllm-ranker ui: the page's behaviour. No framework and no charting library: the charts are a few SVG rects,
// and every text from the server goes into the DOM through textContent (documents may hold HTML or script).
"use strict";

const config = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let collections = [];
let lastQuery = null;

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.setAttribute("class", value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function showError(box, message) {
  box.textContent = message;
  box.hidden = !message;
}

// Every API answer is JSON; a failure carries {"error": "<plain words>"} which is shown as it is.
async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new Error("the vllm-ranker ui server cannot be reached (stopped?)");
  }
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON: handled below */ }
  if (!response.ok || body === null) {
    throw new Error((body && body.error) || `the server answered ${response.status}`);
  }
  return body;
}

const ms = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + " ms";
const fmtScore = (v) => (Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.001) ? v.toExponential(2) : v.toFixed(4));

// ---- collections and the form ------------------------------------------------------------------------------
function fillSelect(select, values, chosen) {
  select.replaceChildren(...values.map((v) => el("option", { value: v, text: v })));
  if (chosen && values.includes(chosen)) select.value = chosen;
}

function onCollection() {
  const view = collections.find((c) => c.name === $("collection").value);
  if (!view) return;
  fillSelect($("text-field"), view.text_fields, view.default_text);
  const labels = { dense: "dense", bm25: "BM25", hybrid: "hybrid (RRF)" };
  $("stage").replaceChildren(...view.stages.map((s) => el("option", { value: s, text: labels[s] })));
  if (view.stages.includes("hybrid")) $("stage").value = "hybrid";
  if (!view.stages.length) showError($("error"), `collection ${view.name} has no BM25 function and no float vector field: nothing to search`);
}

async function loadCollections() {
  try {
    const answer = await api("/api/collections");
    collections = answer.collections;
    if (!collections.length) {
      showError($("error"), `Milvus at ${answer.uri} has no collections: build one with vllm-ranker demo or vllm-ranker ingest`);
    }
    fillSelect($("collection"), collections.map((c) => c.name));
    onCollection();
    document.body.dataset.state = "ready";
  } catch (e) {
    showError($("error"), e.message);
    document.body.dataset.state = "error";
  }
}

function formBody() {
  return {
    collection: $("collection").value,
    text_field: $("text-field").value,
    stage: $("stage").value,
    query: $("query").value,
    window: $("window").value,
    shown: $("shown").value,
    provider: $("provider").value,
    endpoint: $("endpoint").value,
    model: $("model").value,
    max_batch: $("max-batch").value,
    cache: $("cache").checked,
  };
}

async function runQuery(event) {
  event.preventDefault();
  const started = performance.now();
  document.body.dataset.state = "searching";
  $("run").disabled = true;
  showError($("error"), "");
  try {
    const body = formBody();
    const answer = await api("/api/compare", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const fetched = performance.now();
    lastQuery = body;
    render(answer);
    // The time until the lists are painted: after the next frame.
    requestAnimationFrame(() => setTimeout(() => {
      const done = performance.now();
      const page = done - started;
      const ours = page - answer.timing_ms.rerank_service;
      $("render").textContent =
        `in the browser: ${ms(page)} from click to painted lists (server ${ms(answer.timing_ms.total)}, ` +
        `drawing ${ms(done - fetched)}); ${ms(ours)} on top of the rerank service's own time`;
      $("render").dataset.pageMs = page.toFixed(1);
      $("render").dataset.overServiceMs = ours.toFixed(1);
      document.body.dataset.state = "done";
    }, 0));
  } catch (e) {
    $("results").hidden = true;
    showError($("error"), e.message);
    document.body.dataset.state = "error";
  } finally {
    $("run").disabled = false;
  }
}

// ---- the two lists ----------------------------------------------------------------------------------------
function segmentsTo(node, segments) {
  for (const [text, marked] of segments) node.append(marked ? el("mark", { text }) : document.createTextNode(text));
  return node;
}

function moveBadge(move, side) {
  if (side === "first") {
    if (move.kind === "dropped") {
      return el("span", { class: "move dropped", text: move.to ? `dropped → #${move.to}` : "dropped", title: "not in the reranked top" });
    }
    const kind = move.by > 0 ? "up" : move.by < 0 ? "down" : "same";
    return el("span", { class: `move to ${kind}`, text: `→ #${move.to}` });
  }
  const text = {
    up: `▲ ${move.by}`,
    down: `▼ ${-move.by}`,
    same: "=",
    new: move.from ? `new (was #${move.from})` : "new",
  }[move.kind];
  return el("span", { class: `move ${move.kind}`, text, title: move.from ? `first stage #${move.from}` : "not in the first stage" });
}

function hitRow(hit, side) {
  const label = hit.title ? `${hit.title}` : `id ${hit.key}`;
  return el("li", { class: `hit ${hit.move.kind}`, "data-key": hit.key, "data-move": hit.move.kind, tabindex: "0", onclick: () => openDocument(hit.key), onkeydown: (e) => { if (e.key === "Enter") openDocument(hit.key); } },
    el("span", { class: "rank", text: `${hit.rank}` }),
    el("div", { class: "body" },
      el("div", { class: "head" },
        el("span", { class: "title", text: label }),
        hit.title ? el("span", { class: "id", text: `id ${hit.key}` }) : null,
        moveBadge(hit.move, side)),
      el("div", { class: "scoreline" },
        el("span", { class: "bar" }, el("span", { style: `width:${(100 * hit.bar).toFixed(1)}%` })),
        el("span", { class: "score", text: fmtScore(hit.score) })),
      segmentsTo(el("p", { class: "snippet" }), hit.snippet)));
}

function render(answer) {
  $("results").hidden = false;
  $("summary").textContent =
    `“${answer.query}” in ${answer.collection}: ${answer.stage_label}; window ${answer.window}, ` +
    `${answer.candidates.reranked} candidates reranked, top ${answer.shown} shown.`;
  if (!answer.first.length && !answer.reranked.length) {
    $("summary").textContent += " No hits: the first stage found nothing for this query (BM25 needs a shared word).";
  }
  $("first-label").textContent = `(${answer.stage})`;
  $("reranked-label").textContent = answer.stats.fallback ? "(service failed: first-stage order)" : "(model score)";
  $("first").replaceChildren(...answer.first.map((h) => hitRow(h, "first")));
  $("reranked").replaceChildren(...answer.reranked.map((h) => hitRow(h, "reranked")));
  drawMoves();
  renderTiming(answer);
}

// Lines between the lists: each hit's first-stage row to its reranked row; hits that enter or leave the shown
// top get a line to the bottom edge.
function drawMoves() {
  const svg = $("moves");
  const box = svg.getBoundingClientRect();
  svg.setAttribute("viewBox", `0 0 ${box.width} ${box.height}`);
  svg.replaceChildren();
  const rows = (id) => new Map([...$(id).children].map((li) => {
    const r = li.getBoundingClientRect();
    return [li.dataset.key, r.top - box.top + r.height / 2];
  }));
  const left = rows("first");
  const right = rows("reranked");
  const line = (y1, y2, kind) => svg.append(el("svg:path", {
    d: `M0 ${y1} C ${box.width / 2} ${y1}, ${box.width / 2} ${y2}, ${box.width} ${y2}`, class: `link ${kind}`,
  }));
  for (const [key, y1] of left) {
    if (right.has(key)) {
      const y2 = right.get(key);
      line(y1, y2, y2 < y1 - 1 ? "up" : y2 > y1 + 1 ? "down" : "same");
    } else line(y1, box.height, "dropped");
  }
  for (const [key, y2] of right) if (!left.has(key)) line(box.height, y2, "new");
}

function renderTiming(answer) {
  const t = answer.timing_ms;
  const s = answer.stats;
  const parts = [
    ["first_stage_search", "first-stage search (Milvus)", t.first_stage_search],
    ["rerank_service", "rerank service", t.rerank_service],
    ["rerank_overhead", "our overhead", t.rerank_overhead],
  ];
  if (t.embed_query > 0) parts.unshift(["embed_query", "query embedding", t.embed_query]);
  const total = parts.reduce((a, p) => a + p[2], 0) || 1;
  $("time-bar").replaceChildren(...parts.map(([key, label, v]) =>
    el("span", { class: `seg ${key}`, style: `width:${Math.max(0.5, (100 * v) / total).toFixed(2)}%`, title: `${label}: ${ms(v)}` })));
  const rows = [
    ...parts,
    ["rerank_step", "rerank step (service + overhead)", t.rerank_step],
    ["first_stage_call", "first-stage list alone (left column)", t.first_stage_call],
    ["total", "server, both lists", t.total],
  ];
  $("time-table").replaceChildren(...rows.map(([key, label, v]) =>
    el("tr", { "data-metric": key }, el("th", {}, el("i", { class: `swatch ${key}` }), label), el("td", { text: ms(v) }))));
  const counts = [
    ["candidates", "candidates reranked", s.candidates],
    ["batches", "batches", s.batches],
    ["requests", "requests sent", s.requests],
    ["retries", "retries", s.retries],
    ["cache_hits", "cache hits", s.cache_hits],
    ["cache_misses", "cache misses", s.cache_misses],
    ["prompt_tokens", "prompt tokens", s.prompt_tokens],
  ];
  const countRows = counts.map(([key, label, v]) => el("tr", { "data-metric": key }, el("th", { text: label }), el("td", { text: `${v}` })));
  if (s.fallback) countRows.push(el("tr", { "data-metric": "fallback", class: "warn" }, el("th", { text: "fell back" }), el("td", { text: s.error || "yes" })));
  $("count-table").replaceChildren(...countRows);
}

// ---- one document in full -------------------------------------------------------------------------------
async function openDocument(key) {
  if (!lastQuery) return;
  const params = new URLSearchParams({ collection: lastQuery.collection, key, text_field: lastQuery.text_field, query: lastQuery.query });
  try {
    const doc = await api(`/api/document?${params}`);
    $("doc-title").textContent = `${doc.collection} · ${doc.pk} ${doc.key}`;
    $("doc-fields").replaceChildren(...Object.entries(doc.fields).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: `${v}` })]));
    $("doc-text").replaceChildren();
    segmentsTo($("doc-text"), doc.text);
    $("doc").showModal();
  } catch (e) {
    showError($("error"), e.message);
  }
}

// ---- evaluation view --------------------------------------------------------------------------------------
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

async function loadReport() {
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

// A cloud provider has its own URL: the vLLM default in the endpoint box would send the documents to the wrong
// service, so it is cleared (and put back when a self-hosted provider is chosen again).
function onProvider() {
  const selfHosted = ["vllm", "tei"].includes($("provider").value);
  const box = $("endpoint");
  if (!selfHosted && box.value === config.endpoint) box.value = "";
  if (selfHosted && !box.value) box.value = config.endpoint;
  box.placeholder = selfHosted ? "" : "the provider's own URL";
}

// ---- wiring -------------------------------------------------------------------------------------------------
function switchView(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.view === name);
  $("view-compare").hidden = name !== "compare";
  $("view-evaluation").hidden = name !== "evaluation";
}

document.addEventListener("DOMContentLoaded", () => {
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => switchView(tab.dataset.view));
  $("collection").addEventListener("change", onCollection);
  $("provider").addEventListener("change", onProvider);
  $("query-form").addEventListener("submit", runQuery);
  $("eval-file").addEventListener("change", loadReport);
  window.addEventListener("resize", () => { if (!$("results").hidden) drawMoves(); });
  loadCollections();
});

// vllm-ranker ui: the compare view (collections, the form, both lists, timings, a document in full) and the wiring.
import { $, api, config, el, fmtScore, ms, postJSON, showError } from "./common.js";
import { loadReport } from "./evaluation.js";

let collections = [];
let lastQuery = null;

// ---- collections and the form ------------------------------------------------------------------------------
function fillSelect(select, values, chosen) {
  select.replaceChildren(...values.map((v) => el("option", { value: v, text: v })));
  if (chosen && values.includes(chosen)) select.value = chosen;
}

const selected = () => collections.find((c) => c.name === $("collection").value);
const loading = new Set();  // names whose load this page has asked for and not heard back about
const loadedIn = new Map();  // name -> ms the page's own load of it took

function onCollection() {
  const view = selected();
  if (!view) return;
  fillSelect($("text-field"), view.text_fields, view.default_text);
  const labels = { dense: "dense", bm25: "BM25", hybrid: "hybrid (RRF)" };
  $("stage").replaceChildren(...view.stages.map((s) => el("option", { value: s, text: labels[s] })));
  if (view.stages.includes("hybrid")) $("stage").value = "hybrid";
  showError($("error"), "");
  if (!view.stages.length) showError($("error"), `collection ${view.name} has no BM25 function and no float vector field: nothing to search`);
  showLoadState(view);
}

// Milvus searches only loaded collections. A Milvus Lite file opened anew has every collection released, and
// loading one takes this process's memory only, so the page loads the one picked at once. On a server, loading
// takes the query nodes' memory (everyone's) and maybe minutes: the page says so and waits for the Load button.
function showLoadState(view) {
  const ready = view.load_state === "loaded";
  $("run").disabled = !ready;
  $("load-box").hidden = ready;
  $("load").hidden = true;
  const took = loadedIn.get(view.name);
  $("collection-status").textContent = !ready || took === undefined ? ""
    : config.lite
      ? `Loaded ${view.name} in ${ms(took)}: Milvus Lite leaves every collection of a file released when a new ` +
        "process opens it, so the page loads the one you pick."
      : `Loaded ${view.name} in ${ms(took)}.`;
  if (ready) {
    document.body.dataset.state = "ready";
  } else if (loading.has(view.name)) {
    $("load-why").textContent = `Loading ${view.name} …`;
    document.body.dataset.state = "loading";
  } else if (config.lite) {
    loadCollection(view.name);
  } else {
    $("load-why").textContent =
      `${view.name} is ${view.load_state} on this Milvus server: it must be loaded before it can be searched. ` +
      "Loading puts it in the query nodes' memory, for everyone using this Milvus, and a large collection takes a " +
      "while, so the page asks first.";
    $("load").hidden = false;
    document.body.dataset.state = "released";
  }
}

async function loadCollection(name) {
  loading.add(name);
  const started = performance.now();
  if (selected() && selected().name === name) showLoadState(selected());
  try {
    const view = await postJSON("/api/load", { collection: name });
    collections = collections.map((c) => (c.name === name ? view : c));
    loadedIn.set(name, performance.now() - started);
  } catch (e) {
    loading.delete(name);
    showError($("error"), e.message);
    if (selected() && selected().name === name) {  // the button retries; loading again by itself could loop
      $("load-why").textContent = `${name} could not be loaded.`;
      $("load").hidden = false;
    }
    document.body.dataset.state = "error";
    return;
  }
  loading.delete(name);
  if (selected() && selected().name === name) showLoadState(selected());
}

function showGetData(answer) {
  $("query-form").hidden = true;
  $("get-data").hidden = false;
  $("empty-why").textContent = answer.exists
    ? `Milvus at ${answer.uri} has no collections.`
    : `There is no Milvus Lite file at ${answer.uri}. The page only reads: it creates none.`;
  // Milvus Lite lets one process at a time open a file, and this page's server holds an existing one open.
  $("empty-then").textContent = config.lite && answer.exists
    ? "This page's server holds the file open, and Milvus Lite lets one process at a time open it: stop " +
      "vllm-ranker ui (Ctrl-C), run one of these, then start it again."
    : "Then reload this page.";
  const neighbours = answer.neighbours || [];
  $("empty-neighbours").hidden = !neighbours.length;
  $("neighbours").replaceChildren(...neighbours.flatMap((path, i) => [i ? ", " : "", el("code", { text: path })]));
  document.body.dataset.state = "empty";
}

async function loadCollections() {
  try {
    const answer = await api("/api/collections");
    collections = answer.collections;
    if (!collections.length) {
      showGetData(answer);
      return;
    }
    fillSelect($("collection"), collections.map((c) => c.name));
    onCollection();
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
    // Sent as typed: the server checks them and says what is wrong in the error box.
    chunk_words: $("chunk-words").value,
    chunk_overlap: $("chunk-overlap").value,
    max_chunks: $("max-chunks").value,
    fuse: $("fuse").value,
    fuse_k: $("fuse-k").value,
    fuse_weight: $("fuse-weight").value,
  };
}

// Only the chosen fusion's box means something; the other keeps its value for when it is chosen again.
function onFuse() {
  $("fuse-k").disabled = $("fuse").value !== "rrf";
  $("fuse-weight").disabled = $("fuse").value !== "weighted";
}

async function runQuery(event) {
  event.preventDefault();
  const started = performance.now();
  document.body.dataset.state = "searching";
  $("run").disabled = true;
  showError($("error"), "");
  const body = formBody();
  try {
    const answer = await postJSON("/api/compare", body);
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
    if (e.kind === "not_loaded") {  // released since the list was read (by someone else, on a server)
      const view = selected();
      if (view && view.name === body.collection) {
        view.load_state = "released";
        showLoadState(view);
        return;
      }
    }
  }
  $("run").disabled = false;
}

// ---- the two lists ----------------------------------------------------------------------------------------
function segmentsTo(node, segments, chunk) {
  const part = (list) => list.map(([text, marked]) => (marked ? el("mark", { text }) : document.createTextNode(text)));
  if (!chunk) {
    node.append(...part(segments));
    return node;
  }
  // The model's winning chunk: segments [i, j) in one mark of its own (query words stay marked inside it).
  const [i, j] = chunk.span;
  const title = `the chunk the model scored highest (#${chunk.index + 1}, characters ${chunk.start}–${chunk.end})`;
  node.append(...part(segments.slice(0, i)), el("mark", { class: "chunk", title }, ...part(segments.slice(i, j))),
    ...part(segments.slice(j)));
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

// The reranked score's name (model, or fused when fusion is on) and, beside it, where the hit stood before.
function scoreLine(hit, side, answer) {
  if (side === "first") return [el("span", { class: "score", text: fmtScore(hit.score) })];
  const name = answer.stats.fallback ? "first stage" : answer.score_name;
  const was = hit.first_stage;
  return [
    el("span", { class: "score", "data-name": name, text: `${name} ${fmtScore(hit.score)}`, title: answer.score_label }),
    was ? el("span", { class: "first-score", text: `first stage ${fmtScore(was.score)} · #${was.rank}`, title: `score and rank in ${answer.kept_from}` }) : null,
  ];
}

function hitRow(hit, side, answer) {
  const label = hit.title ? `${hit.title}` : `id ${hit.key}`;
  const open = () => openDocument(hit.key, hit.chunk);
  return el("li", { class: `hit ${hit.move.kind}`, "data-key": hit.key, "data-move": hit.move.kind, tabindex: "0", onclick: open, onkeydown: (e) => { if (e.key === "Enter") open(); } },
    el("span", { class: "rank", text: `${hit.rank}` }),
    el("div", { class: "body" },
      el("div", { class: "head" },
        el("span", { class: "title", text: label }),
        hit.title ? el("span", { class: "id", text: `id ${hit.key}` }) : null,
        moveBadge(hit.move, side)),
      el("div", { class: "scoreline" },
        el("span", { class: "bar" }, el("span", { style: `width:${(100 * hit.bar).toFixed(1)}%` })),
        ...scoreLine(hit, side, answer)),
      segmentsTo(el("p", { class: "snippet" }), hit.snippet, hit.chunk)));
}

function render(answer) {
  $("results").hidden = false;
  $("summary").textContent =
    `“${answer.query}” in ${answer.collection}: ${answer.stage_label}; window ${answer.window}, ` +
    `${answer.candidates.reranked} candidates reranked` +
    (answer.chunking ? ` (${answer.chunking})` : "") + `, top ${answer.shown} shown.`;
  if (!answer.first.length && !answer.reranked.length) {
    $("summary").textContent += " No hits: the first stage found nothing for this query (BM25 needs a shared word).";
  }
  $("first-label").textContent = `(${answer.stage})`;
  $("reranked-label").textContent = answer.stats.fallback ? "(service failed: first-stage order)" : `(${answer.score_label})`;
  $("first").replaceChildren(...answer.first.map((h) => hitRow(h, "first", answer)));
  $("reranked").replaceChildren(...answer.reranked.map((h) => hitRow(h, "reranked", answer)));
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
  if (s.chunk_unit) counts.splice(1, 0, ["chunks", "chunks scored", s.chunks], ["chunk_unit", "chunk unit", s.chunk_unit]);
  const countRows = counts.map(([key, label, v]) => el("tr", { "data-metric": key }, el("th", { text: label }), el("td", { text: `${v}` })));
  if (s.fallback) countRows.push(el("tr", { "data-metric": "fallback", class: "warn" }, el("th", { text: "fell back" }), el("td", { text: s.error || "yes" })));
  $("count-table").replaceChildren(...countRows);
}

// ---- one document in full -------------------------------------------------------------------------------
async function openDocument(key, chunk) {
  if (!lastQuery) return;
  const params = new URLSearchParams({ collection: lastQuery.collection, key, text_field: lastQuery.text_field, query: lastQuery.query });
  if (chunk) {
    params.set("chunk_start", chunk.start);
    params.set("chunk_end", chunk.end);
  }
  try {
    const doc = await api(`/api/document?${params}`);
    $("doc-title").textContent = `${doc.collection} · ${doc.pk} ${doc.key}`;
    $("doc-fields").replaceChildren(...Object.entries(doc.fields).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: `${v}` })]));
    $("doc-text").replaceChildren();
    segmentsTo($("doc-text"), doc.text, doc.chunk && { ...chunk, ...doc.chunk });
    $("doc").showModal();
  } catch (e) {
    showError($("error"), e.message);
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
  $("fuse").addEventListener("change", onFuse);
  onFuse();  // a reload may bring the form's last choice back
  $("query-form").addEventListener("submit", runQuery);
  $("load").addEventListener("click", () => loadCollection($("collection").value));
  $("eval-file").addEventListener("change", loadReport);
  window.addEventListener("resize", () => { if (!$("results").hidden) drawMoves(); });
  loadCollections();
});

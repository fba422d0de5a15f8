// vllm-ranker ui: what both views share. Every text from the server goes into the DOM through textContent
// (documents may hold HTML or script); no framework, and nothing is loaded from outside the package.

export const config = JSON.parse(document.getElementById("config").textContent);
export const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

export function el(tag, attrs, ...children) {
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

export function showError(box, message) {
  box.textContent = message;
  box.hidden = !message;
}

// Every API answer is JSON; a failure carries {"error": "<plain words>", "kind": ...}: the words are shown as they
// are, the kind tells the page what to do next (a released collection is offered for loading).
export async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new Error("the vllm-ranker ui server cannot be reached (stopped?)");
  }
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON: handled below */ }
  if (!response.ok || body === null) {
    const failure = new Error((body && body.error) || `the server answered ${response.status}`);
    failure.kind = body && body.kind;
    throw failure;
  }
  return body;
}

export const postJSON = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

export const ms = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + " ms";
export const fmtScore = (v) => (Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.001) ? v.toExponential(2) : v.toFixed(4));

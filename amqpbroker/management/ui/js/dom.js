// Building the page: elements from data, never parsed from HTML strings, so a
// queue or user name is always text, whatever it contains.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function link(href, text, attrs = {}) {
  return h("a", { href, ...attrs }, text);
}

// A hash route from segments: #/queues/%2F/orders
export function route(...segments) {
  return "#/" + segments.map((s) => encodeURIComponent(s)).join("/");
}

export function num(value) {
  if (value === undefined || value === null) return "";
  return Number(value).toLocaleString("en-US");
}

export function rate(details) {
  const value = details && typeof details.rate === "number" ? details.rate : 0;
  return `${value.toLocaleString("en-US", { maximumFractionDigits: 1 })}/s`;
}

export function bytes(value) {
  if (value === undefined || value === null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(value);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toLocaleString("en-US", { maximumFractionDigits: 1 })} ${units[i]}`;
}

export function yesNo(value) {
  return value ? "yes" : "no";
}

export function json(value) {
  if (value === undefined || value === null) return "";
  if (typeof value === "object" && Object.keys(value).length === 0) return "";
  return JSON.stringify(value);
}

// A two-column table of facts: [[label, value], ...]
export function facts(rows, attrs = {}) {
  return h("table", { class: "facts", ...attrs },
    h("tbody", {}, rows.map(([label, value, id]) =>
      h("tr", {}, h("th", {}, label), h("td", id ? { id } : {}, value)))));
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", {}, title), children);
}

export function message(el, text, kind = "error") {
  replace(el, text ? h("p", { class: `message ${kind}`, role: "status" }, text) : null);
}

// Line charts in plain SVG, and the samples they draw.
//
// The API gives each figure's current value and rate (`messages`, `publish_details.rate`);
// the UI records them at every refresh, so a chart shows the last minutes seen while the
// UI is open (RabbitMQ's UI asks the server for its retained samples instead:
// docs/compatibility.md).

import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const KEEP = 180; // samples per chart: 15 minutes at the default 5 s refresh
const samples = new Map(); // chart key -> [{ t, values }]

export function record(key, values) {
  const list = samples.get(key) || [];
  list.push({ t: Date.now(), values });
  if (list.length > KEEP) list.splice(0, list.length - KEEP);
  samples.set(key, list);
}

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (value <= m * step) return m * step;
  return 10 * step;
}

function label(value) {
  return value.toLocaleString("en-US", { maximumFractionDigits: 1 });
}

// series: [{ key, label }]; unit: "msg" or "msg/s"
export function lineChart({ id, key, series, unit }) {
  const W = 640, H = 200, L = 56, R = 10, T = 10, B = 24;
  const list = samples.get(key) || [];
  const root = svg("svg", { id, class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${series.map((s) => s.label).join(", ")} (${unit})`,
    "data-samples": list.length });
  const max = niceMax(Math.max(0, ...list.flatMap((s) => series.map((x) => s.values[x.key] || 0))));
  for (const f of [0, 0.5, 1]) {
    const y = T + (H - T - B) * (1 - f);
    root.append(svg("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }));
    root.append(svg("text", { x: L - 6, y: y + 4, class: "axis", "text-anchor": "end" },
      `${label(max * f)} ${unit}`));
  }
  const now = Date.now();
  const span = Math.max(60000, list.length ? now - list[0].t : 0);
  const x = (t) => L + (W - L - R) * (1 - (now - t) / span);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  root.append(svg("text", { x: L, y: H - 6, class: "axis" }, `-${Math.round(span / 1000)} s`));
  root.append(svg("text", { x: W - R, y: H - 6, class: "axis", "text-anchor": "end" }, "now"));
  series.forEach((s, i) => {
    const points = list.map((p) => `${x(p.t).toFixed(1)},${y(p.values[s.key] || 0).toFixed(1)}`);
    if (points.length === 1) points.push(`${(W - R).toFixed(1)},${points[0].split(",")[1]}`);
    if (points.length) root.append(svg("polyline", { points: points.join(" "), class: `line series-${i}` }));
  });
  const last = list.length ? list[list.length - 1].values : {};
  const legend = h("ul", { class: "legend" }, series.map((s, i) =>
    h("li", {}, h("span", { class: `swatch series-${i}` }), `${s.label}: `,
      h("strong", {}, label(last[s.key] || 0)), ` ${unit}`)));
  return h("figure", { class: "chart-box" }, root, legend);
}

// Overview: message rates and queued messages charts, totals, alarms, listeners
// (GET /api/overview; GET /api/nodes for users who may see the node).

import { get } from "../api.js";
import { h, replace, num, bytes, facts, section, message } from "../dom.js";
import { record, lineChart } from "../chart.js";

const RATES = [
  { key: "publish", label: "Publish" },
  { key: "confirm", label: "Publisher confirm" },
  { key: "deliver_get", label: "Deliver / get" },
  { key: "ack", label: "Consumer ack" },
  { key: "redeliver", label: "Redelivered" },
  { key: "return_unroutable", label: "Unroutable (return)" },
];
const DEPTH = [
  { key: "messages_ready", label: "Ready" },
  { key: "messages_unacknowledged", label: "Unacked" },
  { key: "messages", label: "Total" },
];

function rateValues(stats) {
  const out = {};
  for (const { key } of RATES) out[key] = (stats[`${key}_details`] || {}).rate || 0;
  return out;
}

function alarms(node) {
  const on = [];
  if (node.mem_alarm) on.push("memory");
  if (node.disk_free_alarm) on.push("disk");
  return on.length
    ? h("span", { class: "alarm" }, `${on.join(" and ")} alarm in effect: publishers are blocked`)
    : h("span", { class: "ok" }, "none");
}

function uptime(ms) {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${hr}h` : hr ? `${hr}h ${m}m` : `${m}m ${s % 60}s`;
}

export default {
  async render(main, args, user) {
    const status = h("div");
    const charts = h("div", { class: "charts" });
    const totals = h("div");
    const node = h("div");
    const listeners = h("div");
    replace(main, h("h1", {}, "Overview"), status,
      section("Queued messages and message rates", charts),
      section("Totals", totals),
      user.is("monitoring") ? section("Node", node) : null,
      section("Listeners", listeners));

    async function refresh() {
      let ov, nodes = [];
      try {
        ov = await get("/api/overview");
        if (user.is("monitoring")) nodes = await get("/api/nodes");
      } catch (error) {
        message(status, error.message);
        return;
      }
      message(status, "");
      const q = ov.queue_totals || {};
      record("overview", { ...rateValues(ov.message_stats || {}), messages: q.messages || 0,
        messages_ready: q.messages_ready || 0,
        messages_unacknowledged: q.messages_unacknowledged || 0 });
      replace(charts,
        lineChart({ id: "chart-depth", key: "overview", series: DEPTH, unit: "msg" }),
        lineChart({ id: "chart-rates", key: "overview", series: RATES, unit: "msg/s" }));
      const t = ov.object_totals || {};
      replace(totals, h("div", { class: "tiles", id: "totals" },
        [["Connections", t.connections], ["Channels", t.channels], ["Exchanges", t.exchanges],
          ["Queues", t.queues], ["Consumers", t.consumers], ["Messages", q.messages]]
          .filter(([, v]) => v !== undefined)
          .map(([label, value]) => h("div", { class: "tile" }, h("strong", {}, num(value)), label))));
      const n = nodes[0];
      if (n) {
        replace(node, facts([
          ["Node", n.name], ["Alarms", alarms(n), "alarms"], ["Uptime", uptime(n.uptime)],
          ["Memory", `${bytes(n.mem_used)} of ${bytes(n.mem_limit)} (alarm above)`],
          ["Disk free", `${bytes(n.disk_free)} (alarm below ${bytes(n.disk_free_limit)})`],
          ["File descriptors", `${num(n.fd_used)} of ${num(n.fd_total)}`],
          ["Version", `amqpbroker ${ov.product_version}, Python ${ov.python_version}`],
        ]));
      }
      replace(listeners, ov.listeners
        ? h("table", { class: "list", id: "listeners" },
          h("thead", {}, h("tr", {}, h("th", {}, "Protocol"), h("th", {}, "Bound to"), h("th", {}, "Port"))),
          h("tbody", {}, ov.listeners.map((l) =>
            h("tr", {}, h("td", {}, l.protocol), h("td", {}, l.ip_address), h("td", {}, l.port)))))
        : h("p", { class: "muted" }, "Listeners are shown to monitoring and administrator users."));
    }
    await refresh();
    return { refresh };
  },
};

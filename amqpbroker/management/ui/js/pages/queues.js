// Queues: the list (server-side paging; depth, rates, consumers), declare, and one
// queue's detail: depth chart, consumers, bindings, publish, get messages, purge, delete.

import { get, put, post, del, path } from "../api.js";
import { h, replace, link, route, num, rate, bytes, json, yesNo, facts, section, message } from "../dom.js";
import { pagedTable } from "../table.js";
import { form, dangerButton, vhostField } from "../forms.js";
import { bindingsTable, bindForm, publishForm } from "../bindings.js";
import { record, lineChart } from "../chart.js";

const stat = (q, key) => rate((q.message_stats || {})[`${key}_details`]);
const features = (q) => [q.durable ? "D" : "", q.auto_delete ? "AD" : "", q.exclusive ? "Excl" : "",
  Object.keys(q.arguments || {}).filter((k) => k !== "x-queue-type").length ? "Args" : "",
  q.policy ? `Pol: ${q.policy}` : ""].filter(Boolean).join(" ");

async function list(main) {
  const table = pagedTable({ id: "queues", noun: "queues", url: () => "/api/queues",
    columns: [
      { label: "Virtual host", sort: "vhost", key: "vhost" },
      { label: "Name", sort: "name", render: (q) => link(route("queues", q.vhost, q.name), q.name) },
      { label: "Type", sort: "type", key: "type" },
      { label: "Features", render: features },
      { label: "State", sort: "state", key: "state" },
      { label: "Ready", sort: "messages_ready", render: (q) => num(q.messages_ready), class: "n" },
      { label: "Unacked", sort: "messages_unacknowledged", render: (q) => num(q.messages_unacknowledged), class: "n" },
      { label: "Total", sort: "messages", render: (q) => num(q.messages), class: "n" },
      { label: "Incoming", sort: "message_stats.publish_details.rate", render: (q) => stat(q, "publish"), class: "n" },
      { label: "Deliver / get", sort: "message_stats.deliver_get_details.rate", render: (q) => stat(q, "deliver_get"), class: "n" },
      { label: "Ack", render: (q) => stat(q, "ack"), class: "n" },
      { label: "Consumers", sort: "consumers", render: (q) => num(q.consumers), class: "n" },
    ] });
  const vhosts = await get("/api/vhosts");
  const declare = form({ id: "declare-queue", submit: "Add queue", fields: [
    vhostField(vhosts), { name: "name", label: "Name", required: true },
    { name: "type", label: "Type", type: "select", options: ["classic", "quorum", "stream"], value: "classic" },
    { name: "durable", label: "Durable", type: "checkbox", value: true },
    { name: "auto_delete", label: "Auto delete", type: "checkbox" },
    { name: "arguments", label: "Arguments", type: "json", placeholder: '{"x-max-length": 1000, "x-message-ttl": 60000}' },
  ], onSubmit: async (v) => {
    await put(path("queues", v.vhost, v.name), { durable: v.durable, auto_delete: v.auto_delete,
      arguments: { ...v.arguments, "x-queue-type": v.type } });
    await table.refresh();
    return `Queue ${v.name} declared.`;
  } });
  replace(main, h("h1", {}, "Queues"), table.el, section("Add a new queue", declare));
  await table.refresh();
  return table;
}

function messageView(m, i) {
  return h("div", { class: "got-message" }, h("h3", {}, `Message ${i + 1}`), facts([
    ["Exchange", m.exchange || "(AMQP default)"], ["Routing key", m.routing_key],
    ["Redelivered", yesNo(m.redelivered)], ["Properties", h("code", {}, json(m.properties))],
    ["Payload", h("pre", { class: "payload" }, m.payload)],
    ["Encoding", `${m.payload_encoding}, ${num(m.payload_bytes)} bytes`],
  ]));
}

function getForm(vhost, name, out, changed) {
  return form({ id: "get-messages", submit: "Get message(s)", fields: [
    { name: "ackmode", label: "Ack mode", type: "select", value: "ack_requeue_true", options: [
      ["ack_requeue_true", "Nack message requeue true"], ["ack_requeue_false", "Automatic ack"],
      ["reject_requeue_true", "Reject requeue true"], ["reject_requeue_false", "Reject requeue false"]] },
    { name: "encoding", label: "Encoding", type: "select", options: [["auto", "Auto string / base64"], ["base64", "base64"]] },
    { name: "count", label: "Messages", type: "number", value: 1 },
    { name: "truncate", label: "Truncate (bytes)", type: "number", value: 50000 },
  ], onSubmit: async (v) => {
    const got = await post(`${path("queues", vhost, name)}/get`, v);
    replace(out, got.length ? got.map(messageView) : h("p", { class: "muted" }, "Queue is empty."));
    await changed();
    return `${got.length} message(s).`;
  } });
}

async function detail(main, vhost, name) {
  const status = h("div", { id: "queue-status" });
  const info = h("div");
  const charts = h("div", { class: "charts" });
  const consumers = h("div");
  const bindings = h("div");
  const got = h("div", { id: "got-messages" });
  const key = `queue:${vhost}/${name}`;
  replace(main, h("h1", {}, "Queue ", h("code", { id: "queue-name" }, name),
    h("small", { class: "muted" }, ` in ${vhost}`)), status, info, section("Depth and rates", charts),
  section("Consumers", consumers), section("Bindings", bindings,
    bindForm({ id: "bind-queue", vhost, queue: name, changed: () => refresh() })),
  section("Publish a message", h("p", { class: "muted" }, "Published to the default exchange with the queue's name as routing key."),
    publishForm({ id: "publish", vhost, exchange: "", routingKey: name, published: () => refresh() })),
  section("Get messages", getForm(vhost, name, got, () => refresh()), got),
  section("Purge and delete", dangerButton({ id: "purge", label: "Purge messages", status,
    question: `Purge every ready message of ${name}?`, onClick: async () => {
      await del(`${path("queues", vhost, name)}/contents`);
      await refresh();
      return "Queue purged.";
    } }), " ", dangerButton({ id: "delete-queue", label: "Delete queue", status,
    question: `Delete queue ${name} and its messages?`, onClick: async () => {
      await del(path("queues", vhost, name));
      location.hash = "#/queues";
    } })));

  async function refresh() {
    let q, qb;
    try {
      [q, qb] = await Promise.all([get(path("queues", vhost, name)),
        get(`${path("queues", vhost, name)}/bindings`)]);
    } catch (error) {
      message(status, error.status === 404 ? "This queue does not exist (any more)." : error.message);
      return;
    }
    const s = q.message_stats || {};
    const r = (k) => (s[`${k}_details`] || {}).rate || 0;
    record(key, { messages: q.messages, messages_ready: q.messages_ready,
      messages_unacknowledged: q.messages_unacknowledged, publish: r("publish"),
      deliver_get: r("deliver_get"), ack: r("ack") });
    replace(info, section("Details", facts([
      ["Type", q.type], ["State", q.state], ["Features", features(q)],
      ["Arguments", h("code", {}, json(q.arguments))],
      ["Policy", q.policy || ""], ["Effective policy", h("code", {}, json(q.effective_policy_definition))],
      ["Messages", num(q.messages), "queue-messages"], ["Ready", num(q.messages_ready), "queue-ready"],
      ["Unacked", num(q.messages_unacknowledged), "queue-unacked"],
      ["Bytes ready", bytes(q.message_bytes_ready)], ["Consumers", num(q.consumers), "queue-consumers"],
      ["Consumer capacity", q.consumers ? `${Math.round((q.consumer_capacity || 0) * 100)} %` : ""],
      ["Published", num(s.publish)], ["Delivered / got", num(s.deliver_get)], ["Acked", num(s.ack)],
    ])));
    replace(charts,
      lineChart({ id: "chart-queue-depth", key, unit: "msg", series: [
        { key: "messages_ready", label: "Ready" }, { key: "messages_unacknowledged", label: "Unacked" },
        { key: "messages", label: "Total" }] }),
      lineChart({ id: "chart-queue-rates", key, unit: "msg/s", series: [
        { key: "publish", label: "Publish" }, { key: "deliver_get", label: "Deliver / get" },
        { key: "ack", label: "Ack" }] }));
    replace(consumers, h("table", { class: "list", id: "queue-consumer-list" },
      h("thead", {}, h("tr", {}, ["Channel", "Consumer tag", "Ack required", "Exclusive", "Prefetch", "Arguments"].map((t) => h("th", {}, t)))),
      h("tbody", {}, (q.consumer_details || []).map((c) => h("tr", {},
        h("td", {}, link(route("channels", c.channel_details.name), c.channel_details.name)),
        h("td", {}, c.consumer_tag), h("td", {}, yesNo(c.ack_required)), h("td", {}, yesNo(c.exclusive)),
        h("td", {}, num(c.prefetch_count)), h("td", {}, h("code", {}, json(c.arguments))))))));
    replace(bindings, bindingsTable("queue-bindings", qb, refresh));
  }
  await refresh();
  return { refresh };
}

export default {
  async render(main, args) {
    if (args.length >= 2) return detail(main, args[0], args[1]);
    return list(main);
  },
};

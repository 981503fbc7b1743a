// Bindings (shared by the exchange and queue pages): the table with unbind buttons, the
// bind form, and the publish form (POST /api/exchanges/{vhost}/{name}/publish).

import { post, del, path } from "./api.js";
import { h, link, route, json } from "./dom.js";
import { form } from "./forms.js";

const EXCHANGE_NAME = (name) => name || "amq.default";

function bindingUrl(b) {
  const kind = b.destination_type === "queue" ? "q" : "e";
  return path("bindings", b.vhost, "e", EXCHANGE_NAME(b.source), kind, b.destination);
}

function endpoint(vhost, type, name) {
  const page = type === "queue" ? "queues" : "exchanges";
  return link(route(page, vhost, EXCHANGE_NAME(name)), name || "(AMQP default)");
}

export function bindingsTable(id, bindings, changed) {
  return h("table", { class: "list", id },
    h("thead", {}, h("tr", {}, ["From", "To", "Routing key", "Arguments", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, bindings.length ? bindings.map((b) => h("tr", {},
      h("td", {}, endpoint(b.vhost, "exchange", b.source)),
      h("td", {}, endpoint(b.vhost, b.destination_type, b.destination)),
      h("td", {}, h("code", {}, b.routing_key)), h("td", {}, h("code", {}, json(b.arguments))),
      h("td", {}, b.source === "" ? h("small", { class: "muted" }, "implicit")
        : h("button", { type: "button", class: "danger", onclick: async () => {
          await del(`${bindingUrl(b)}/${encodeURIComponent(b.properties_key)}`);
          await changed();
        } }, "Unbind"))))
      : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "no bindings"))));
}

// Bind from this exchange (to a queue or exchange), or to this queue (from an exchange).
export function bindForm({ id, vhost, source, queue, changed }) {
  const fields = source !== undefined
    ? [{ name: "destination_type", label: "To", type: "select", options: [["queue", "Queue"], ["exchange", "Exchange"]] },
      { name: "destination", label: "Destination name", required: true }]
    : [{ name: "source", label: "From exchange", required: true }];
  return form({ id, submit: "Bind", reset: true, fields: [...fields,
    { name: "routing_key", label: "Routing key" },
    { name: "arguments", label: "Arguments", type: "json", placeholder: '{"x-match": "all"}' }],
  onSubmit: async (v) => {
    const b = { vhost, source: source ?? v.source, destination: queue ?? v.destination,
      destination_type: queue !== undefined ? "queue" : v.destination_type };
    await post(bindingUrl(b), { routing_key: v.routing_key, arguments: v.arguments });
    await changed();
    return "Bound.";
  } });
}

export function publishForm({ id, vhost, exchange, routingKey, published }) {
  const fields = [
    { name: "routing_key", label: "Routing key", value: routingKey ?? "" },
    { name: "delivery_mode", label: "Delivery mode", type: "select",
      options: [["1", "1 - non-persistent"], ["2", "2 - persistent"]], value: "2" },
    { name: "headers", label: "Headers", type: "json", placeholder: '{"x-trace": "1"}' },
    { name: "properties", label: "Properties", type: "json",
      placeholder: '{"content_type": "application/json", "message_id": "m1"}' },
    { name: "payload", label: "Payload", type: "textarea", rows: 4 },
  ];
  return form({ id, submit: "Publish message", fields, onSubmit: async (v) => {
    const properties = { ...v.properties, delivery_mode: Number(v.delivery_mode) };
    if (Object.keys(v.headers).length) properties.headers = v.headers;
    const answer = await post(`${path("exchanges", vhost, EXCHANGE_NAME(exchange))}/publish`,
      { routing_key: v.routing_key, payload: v.payload, payload_encoding: "string", properties });
    if (published) await published();
    return answer.routed ? "Message published." : "Message published, but not routed to any queue.";
  } });
}

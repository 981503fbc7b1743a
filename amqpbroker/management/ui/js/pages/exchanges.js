// Exchanges: the list (server-side paging), declare, one exchange's detail with its
// bindings, bind, publish a message, delete.

import { get, put, del, path } from "../api.js";
import { h, replace, link, route, num, rate, json, yesNo, facts, section, message } from "../dom.js";
import { pagedTable } from "../table.js";
import { form, dangerButton, vhostField } from "../forms.js";
import { bindingsTable, bindForm, publishForm } from "../bindings.js";

const shown = (name) => name || "(AMQP default)";
const features = (x) => [x.durable ? "D" : "", x.auto_delete ? "AD" : "", x.internal ? "I" : "",
  Object.keys(x.arguments || {}).length ? "Args" : ""].filter(Boolean).join(" ");

async function list(main) {
  const table = pagedTable({ id: "exchanges", noun: "exchanges", url: () => "/api/exchanges",
    columns: [
      { label: "Virtual host", sort: "vhost", key: "vhost" },
      { label: "Name", sort: "name", render: (x) => link(route("exchanges", x.vhost, x.name || "amq.default"), shown(x.name)) },
      { label: "Type", sort: "type", key: "type" },
      { label: "Features", render: features },
      { label: "Rate in", render: (x) => rate((x.message_stats || {}).publish_in_details), class: "n" },
      { label: "Rate out", render: (x) => rate((x.message_stats || {}).publish_out_details), class: "n" },
    ] });
  const [vhosts, overview] = await Promise.all([get("/api/vhosts"), get("/api/overview")]);
  const types = (overview.exchange_types || []).map((t) => t.name);
  const declare = form({ id: "declare-exchange", submit: "Add exchange", fields: [
    vhostField(vhosts), { name: "name", label: "Name", required: true },
    { name: "type", label: "Type", type: "select", options: types, value: "direct" },
    { name: "durable", label: "Durable", type: "checkbox", value: true },
    { name: "auto_delete", label: "Auto delete", type: "checkbox" },
    { name: "internal", label: "Internal", type: "checkbox" },
    { name: "arguments", label: "Arguments", type: "json", placeholder: '{"alternate-exchange": "ae"}' },
  ], onSubmit: async (v) => {
    await put(path("exchanges", v.vhost, v.name), { type: v.type, durable: v.durable,
      auto_delete: v.auto_delete, internal: v.internal, arguments: v.arguments });
    await table.refresh();
    return `Exchange ${v.name} declared.`;
  } });
  replace(main, h("h1", {}, "Exchanges"), table.el, section("Add a new exchange", declare));
  await table.refresh();
  return table;
}

async function detail(main, vhost, name) {
  const status = h("div", { id: "exchange-status" });
  const info = h("div");
  const bindings = h("div");
  replace(main, h("h1", {}, "Exchange ", h("code", {}, shown(name === "amq.default" ? "" : name)),
    h("small", { class: "muted" }, ` in ${vhost}`)), status, info,
  section("Bindings from this exchange", bindings,
    name === "amq.default" ? null : bindForm({ id: "bind-exchange", vhost, source: name, changed: () => refresh() })),
  section("Publish a message", publishForm({ id: "publish", vhost, exchange: name, published: () => refresh() })),
  name === "amq.default" || name.startsWith("amq.") ? null : section("Delete this exchange",
    dangerButton({ id: "delete-exchange", label: "Delete", status, question: `Delete exchange ${name}?`,
      onClick: async () => { await del(path("exchanges", vhost, name)); location.hash = "#/exchanges"; } })));

  async function refresh() {
    let x, source;
    try {
      x = await get(path("exchanges", vhost, name));
      source = name === "amq.default" ? [] : await get(`${path("exchanges", vhost, name)}/bindings/source`);
    } catch (error) {
      message(status, error.message);
      return;
    }
    const stats = x.message_stats || {};
    replace(info, section("Details", facts([
      ["Type", x.type], ["Durable", yesNo(x.durable)], ["Auto delete", yesNo(x.auto_delete)],
      ["Internal", yesNo(x.internal)], ["Arguments", h("code", {}, json(x.arguments))],
      ["Policy", x.policy || ""],
      ["Messages in", `${num(stats.publish_in || 0)} (${rate(stats.publish_in_details)})`],
      ["Messages out", `${num(stats.publish_out || 0)} (${rate(stats.publish_out_details)})`],
    ])));
    replace(bindings, bindingsTable("exchange-bindings", source, refresh));
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

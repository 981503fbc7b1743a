// Channels: the list (server-side paging) and one channel's detail with its consumers.

import { get, path } from "../api.js";
import { h, replace, link, route, num, facts, section, message } from "../dom.js";
import { pagedTable } from "../table.js";
import { CHANNEL_COLUMNS } from "./connections.js";

async function detail(main, name) {
  const status = h("div");
  const info = h("div");
  replace(main, h("h1", {}, "Channel ", h("code", {}, name)), status, info);
  async function refresh() {
    let c;
    try {
      c = await get(path("channels", name));
    } catch (error) {
      message(status, error.status === 404 ? "This channel is closed." : error.message);
      return;
    }
    const stats = c.message_stats || {};
    replace(info, section("Details", facts([
      ["Connection", link(route("connections", c.connection_details.name), c.connection_details.name)],
      ["Virtual host", c.vhost], ["User", c.user], ["State", c.state],
      ["Prefetch", `${num(c.prefetch_count)} per consumer, ${num(c.global_prefetch_count)} per channel`],
      ["Confirm mode", c.confirm ? "on" : "off"], ["Transactional", c.transactional ? "yes" : "no"],
      ["Unacked", num(c.messages_unacknowledged)], ["Unconfirmed", num(c.messages_unconfirmed)],
      ["Published", num(stats.publish)], ["Delivered / got", num(stats.deliver_get)],
      ["Acked", num(stats.ack)],
    ])), section("Consumers", h("table", { class: "list" },
      h("thead", {}, h("tr", {}, ["Consumer tag", "Queue", "Ack required", "Prefetch", "Exclusive"].map((t) => h("th", {}, t)))),
      h("tbody", {}, (c.consumer_details || []).map((k) => h("tr", {},
        h("td", {}, k.consumer_tag),
        h("td", {}, link(route("queues", k.queue.vhost, k.queue.name), k.queue.name)),
        h("td", {}, k.ack_required ? "yes" : "no"), h("td", {}, num(k.prefetch_count)),
        h("td", {}, k.exclusive ? "yes" : "no")))))));
  }
  await refresh();
  return { refresh };
}

export default {
  async render(main, args) {
    if (args.length) return detail(main, args[0]);
    const table = pagedTable({ id: "channels", noun: "channels", url: () => "/api/channels",
      columns: [CHANNEL_COLUMNS[0], { label: "Virtual host", sort: "vhost", key: "vhost" },
        ...CHANNEL_COLUMNS.slice(1)] });
    replace(main, h("h1", {}, "Channels"), table.el);
    await table.refresh();
    return table;
  },
};

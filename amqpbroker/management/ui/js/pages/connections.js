// Connections: the list (server-side paging), one connection's detail with its channels,
// and force close (DELETE /api/connections/{name} with the X-Reason header).

import { get, del, path } from "../api.js";
import { h, replace, link, route, num, rate, bytes, json, facts, section, message } from "../dom.js";
import { pagedTable } from "../table.js";
import { dangerButton } from "../forms.js";

const client = (c) => {
  const p = c.client_properties || {};
  return [p.product, p.version].filter(Boolean).join(" ");
};

export const CHANNEL_COLUMNS = [
  { label: "Channel", sort: "name", render: (c) => link(route("channels", c.name), c.name) },
  { label: "User", sort: "user", key: "user" },
  { label: "Mode", render: (c) => [c.confirm ? "confirm" : "", c.transactional ? "tx" : ""].filter(Boolean).join(" ") },
  { label: "State", key: "state" },
  { label: "Unconfirmed", sort: "messages_unconfirmed", key: "messages_unconfirmed", class: "n" },
  { label: "Prefetch", key: "prefetch_count", class: "n" },
  { label: "Unacked", sort: "messages_unacknowledged", key: "messages_unacknowledged", class: "n" },
  { label: "Publish", render: (c) => rate((c.message_stats || {}).publish_details), class: "n" },
  { label: "Deliver / get", render: (c) => rate((c.message_stats || {}).deliver_get_details), class: "n" },
  { label: "Ack", render: (c) => rate((c.message_stats || {}).ack_details), class: "n" },
];

function list(main) {
  const table = pagedTable({ id: "connections", noun: "connections", url: () => "/api/connections",
    columns: [
      { label: "Name", sort: "name", render: (c) => link(route("connections", c.name), c.name) },
      { label: "Virtual host", sort: "vhost", key: "vhost" },
      { label: "User", sort: "user", key: "user" },
      { label: "Client", render: client },
      { label: "State", sort: "state", key: "state" },
      { label: "Channels", sort: "channels", key: "channels", class: "n" },
      { label: "From client", sort: "recv_oct", render: (c) => rate(c.recv_oct_details), class: "n" },
      { label: "To client", sort: "send_oct", render: (c) => rate(c.send_oct_details), class: "n" },
    ] });
  replace(main, h("h1", {}, "Connections"), table.el);
  return table;
}

async function detail(main, name, user) {
  const status = h("div", { id: "connection-status" });
  const info = h("div");
  const channels = h("div");
  const reason = h("input", { id: "close-reason", value: "Closed via management UI" });
  const close = section("Close this connection",
    h("label", { for: "close-reason" }, "Reason "), reason, " ",
    dangerButton({ id: "force-close", label: "Force close", status,
      question: `Close connection ${name}? The client gets 320 CONNECTION_FORCED.`,
      onClick: async () => {
        await del(path("connections", name), { "X-Reason": reason.value });
        return "Connection closed.";
      } }));
  replace(main, h("h1", {}, "Connection ", h("code", {}, name)), status, info,
    section("Channels", channels), close);

  async function refresh() {
    let c, chans;
    try {
      c = await get(path("connections", name));
      chans = await get(path("connections", name, "channels"));
    } catch (error) {
      if (error.status === 404) message(status, "This connection is closed.", "ok");
      else message(status, error.message);
      return;
    }
    replace(info, section("Details", facts([
      ["Virtual host", c.vhost], ["User", c.user], ["Protocol", c.protocol],
      ["State", c.state, "connection-state"], ["Client", client(c)],
      ["Peer", `${c.peer_host}:${c.peer_port}`], ["Local", `${c.host}:${c.port}`],
      ["Connected at", new Date(c.connected_at).toLocaleString()],
      ["Heartbeat", `${c.timeout} s`], ["Frame max", num(c.frame_max)],
      ["Channel max", num(c.channel_max)],
      ["Received", `${bytes(c.recv_oct)} (${rate(c.recv_oct_details)})`],
      ["Sent", `${bytes(c.send_oct)} (${rate(c.send_oct_details)})`],
      ["Client properties", h("code", {}, json(c.client_properties))],
    ])));
    replace(channels, h("table", { class: "list" },
      h("thead", {}, h("tr", {}, CHANNEL_COLUMNS.map((col) => h("th", {}, col.label)))),
      h("tbody", {}, chans.map((ch) => h("tr", {}, CHANNEL_COLUMNS.map((col) =>
        h("td", { class: col.class }, col.render ? col.render(ch) : ch[col.key])))))));
    close.hidden = !(user.is("administrator") || c.user === user.name);
  }
  await refresh();
  return { refresh };
}

export default {
  async render(main, args, user) {
    if (args.length) return detail(main, args[0], user);
    const table = list(main);
    await table.refresh();
    return table;
  },
};

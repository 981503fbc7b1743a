// Admin: users, virtual hosts, permissions, policies, limits. Administrators see every
// tab; policymakers only the policies of their vhosts (RabbitMQ's rules).

import { get, put, del, path } from "../api.js";
import { h, replace, link, route, num, json, section } from "../dom.js";
import { pagedTable } from "../table.js";
import { form, vhostField } from "../forms.js";

const TABS = [
  { path: "users", title: "Users", level: "administrator", render: users },
  { path: "vhosts", title: "Virtual hosts", level: "administrator", render: vhosts },
  { path: "permissions", title: "Permissions", level: "administrator", render: permissions },
  { path: "policies", title: "Policies", level: "policymaker", render: policies },
  { path: "limits", title: "Limits", level: "administrator", render: limits },
];

function deleteButton(label, question, action, table) {
  return h("button", { type: "button", class: "danger", onclick: async () => {
    if (!window.confirm(question)) return;
    try { await action(); } catch (error) { window.alert(error.message); }
    await table.refresh();
  } }, label);
}

async function users(el) {
  const table = pagedTable({ id: "users", noun: "users", url: () => "/api/users", columns: [
    { label: "Name", sort: "name", key: "name" },
    { label: "Tags", render: (u) => u.tags.join(", ") },
    { label: "Limits", render: (u) => json(u.limits) },
    { label: "", render: (u) => deleteButton("Delete", `Delete user ${u.name}? Its connections are closed.`,
      () => del(path("users", u.name)), table) },
  ] });
  const add = form({ id: "add-user", submit: "Add / update user", reset: true, fields: [
    { name: "name", label: "Username", required: true },
    { name: "password", label: "Password", type: "password", autocomplete: "new-password" },
    { name: "tags", label: "Tags", help: "comma-separated: administrator, monitoring, policymaker, management" },
  ], onSubmit: async (v) => {
    const body = { tags: v.tags };
    if (v.password) body.password = v.password;
    await put(path("users", v.name), body);
    await table.refresh();
    return `User ${v.name} saved.`;
  } });
  replace(el, table.el, section("Add or update a user", add));
  return table;
}

async function vhosts(el) {
  const table = pagedTable({ id: "vhosts", noun: "virtual hosts", url: () => "/api/vhosts", columns: [
    { label: "Name", sort: "name", key: "name" },
    { label: "Description", key: "description" },
    { label: "Default queue type", key: "default_queue_type" },
    { label: "Messages", sort: "messages", render: (v) => num(v.messages), class: "n" },
    { label: "", render: (v) => deleteButton("Delete", `Delete vhost ${v.name} with all its queues and exchanges?`,
      () => del(path("vhosts", v.name)), table) },
  ] });
  const add = form({ id: "add-vhost", submit: "Add virtual host", reset: true, fields: [
    { name: "name", label: "Name", required: true }, { name: "description", label: "Description" },
    { name: "default_queue_type", label: "Default queue type", type: "select", options: ["classic", "quorum", "stream"] },
  ], onSubmit: async (v) => {
    await put(path("vhosts", v.name), { description: v.description, default_queue_type: v.default_queue_type });
    await table.refresh();
    return `Virtual host ${v.name} added.`;
  } });
  replace(el, table.el, section("Add a virtual host", add));
  return table;
}

async function permissions(el) {
  const table = pagedTable({ id: "permissions", noun: "permissions", url: () => "/api/permissions", sort: "user",
    columns: [
      { label: "User", sort: "user", key: "user" }, { label: "Virtual host", sort: "vhost", key: "vhost" },
      { label: "Configure", render: (p) => h("code", {}, p.configure) },
      { label: "Write", render: (p) => h("code", {}, p.write) },
      { label: "Read", render: (p) => h("code", {}, p.read) },
      { label: "", render: (p) => deleteButton("Clear", `Clear ${p.user}'s permissions in ${p.vhost}?`,
        () => del(path("permissions", p.vhost, p.user)), table) },
    ] });
  const [all, names] = await Promise.all([get("/api/vhosts"), get("/api/users")]);
  const set = form({ id: "set-permission", submit: "Set permission", fields: [
    { name: "user", label: "User", type: "select", options: names.map((u) => u.name) }, vhostField(all),
    { name: "configure", label: "Configure regexp", value: ".*" },
    { name: "write", label: "Write regexp", value: ".*" }, { name: "read", label: "Read regexp", value: ".*" },
  ], onSubmit: async (v) => {
    await put(path("permissions", v.vhost, v.user), { configure: v.configure, write: v.write, read: v.read });
    await table.refresh();
    return "Permission set.";
  } });
  replace(el, table.el, section("Set a permission", set));
  return table;
}

async function policies(el, user) {
  const kinds = user.is("administrator") ? [["policies", "Policies"], ["operator-policies", "Operator policies"]]
    : [["policies", "Policies"]];
  const tables = kinds.map(([kind, title]) => {
    const table = pagedTable({ id: kind, noun: title.toLowerCase(), url: () => `/api/${kind}`, columns: [
      { label: "Virtual host", sort: "vhost", key: "vhost" }, { label: "Name", sort: "name", key: "name" },
      { label: "Pattern", render: (p) => h("code", {}, p.pattern) }, { label: "Apply to", key: "apply-to" },
      { label: "Definition", render: (p) => h("code", {}, json(p.definition)) },
      { label: "Priority", sort: "priority", key: "priority", class: "n" },
      { label: "", render: (p) => deleteButton("Delete", `Delete policy ${p.name}?`,
        () => del(path(kind, p.vhost, p.name)), table) },
    ] });
    return [kind, title, table];
  });
  const all = await get("/api/vhosts");
  const add = form({ id: "add-policy", submit: "Add / update policy", fields: [
    { name: "kind", label: "Kind", type: "select", options: kinds },
    vhostField(all), { name: "name", label: "Name", required: true },
    { name: "pattern", label: "Pattern", required: true, placeholder: "^orders\\." },
    { name: "apply-to", label: "Apply to", type: "select",
      options: ["all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams"] },
    { name: "priority", label: "Priority", type: "number", value: 0 },
    { name: "definition", label: "Definition", type: "json", placeholder: '{"max-length": 10000}' },
  ], onSubmit: async (v) => {
    await put(path(v.kind, v.vhost, v.name), { pattern: v.pattern, definition: v.definition,
      priority: v.priority || 0, "apply-to": v["apply-to"] });
    await Promise.all(tables.map(([, , t]) => t.refresh()));
    return `Policy ${v.name} saved.`;
  } });
  replace(el, tables.map(([, title, t]) => section(title, t.el)), section("Add or update a policy", add));
  return { refresh: () => Promise.all(tables.map(([, , t]) => t.refresh())) };
}

async function limits(el) {
  const limitsText = (value) => Object.entries(value).map(([k, v]) => `${k} = ${v}`).join(", ");
  const vhostTable = pagedTable({ id: "vhost-limits", noun: "vhosts with limits", url: () => "/api/vhost-limits",
    sort: "vhost", columns: [{ label: "Virtual host", sort: "vhost", key: "vhost" },
      { label: "Limits", render: (l) => limitsText(l.value) }] });
  const userTable = pagedTable({ id: "user-limits", noun: "users with limits", url: () => "/api/user-limits",
    sort: "user", columns: [{ label: "User", sort: "user", key: "user" },
      { label: "Limits", render: (l) => limitsText(l.value) }] });
  const all = await get("/api/vhosts");
  const limitForm = (id, kind, target, names) => form({ id, submit: "Set limit", fields: [
    target, { name: "limit", label: "Limit", type: "select", options: names },
    { name: "value", label: "Value", type: "number", help: "empty or a negative number removes the limit" },
  ], onSubmit: async (v) => {
    const url = path(`${kind}-limits`, v[kind], v.limit);
    if (v.value === undefined || v.value < 0) await del(url);
    else await put(url, { value: v.value });
    await Promise.all([vhostTable.refresh(), userTable.refresh()]);
    return "Limit saved.";
  } });
  replace(el, section("Virtual host limits", vhostTable.el,
    limitForm("set-vhost-limit", "vhost", vhostField(all), ["max-connections", "max-queues"])),
  section("User limits", userTable.el,
    limitForm("set-user-limit", "user", { name: "user", label: "User", required: true }, ["max-connections", "max-channels"])));
  return { refresh: () => Promise.all([vhostTable.refresh(), userTable.refresh()]) };
}

export default {
  async render(main, args, user) {
    const tabs = TABS.filter((t) => user.is(t.level));
    const tab = tabs.find((t) => t.path === args[0]) || tabs[0];
    const el = h("div");
    replace(main, h("h1", {}, "Admin"), h("nav", { class: "tabs" }, tabs.map((t) =>
      link(route("admin", t.path), t.title, { id: `tab-${t.path}`, class: t === tab ? "active" : "" }))), el);
    const page = await tab.render(el, user);
    await page.refresh();
    return page;
  },
};

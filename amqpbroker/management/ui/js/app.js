// The single-page app: login, the navigation the user's tags allow, hash routes
// (#/queues/%2F/orders) to one module per page, and the periodic refresh.
//
// What a tag allows follows RabbitMQ's management permissions
// (https://www.rabbitmq.com/docs/management#permissions); the API enforces them, the UI
// only leaves out what would be refused anyway.

import * as api from "./api.js";
import { h, replace, message } from "./dom.js";
import { form } from "./forms.js";
import overview from "./pages/overview.js";
import connections from "./pages/connections.js";
import channels from "./pages/channels.js";
import exchanges from "./pages/exchanges.js";
import queues from "./pages/queues.js";
import admin from "./pages/admin.js";
import definitions from "./pages/definitions.js";

const LEVELS = {
  management: ["management", "policymaker", "monitoring", "administrator"],
  policymaker: ["policymaker", "administrator"],
  monitoring: ["monitoring", "administrator"],
  administrator: ["administrator"],
};

const PAGES = [
  { path: "", title: "Overview", page: overview, level: "management" },
  { path: "connections", title: "Connections", page: connections, level: "management" },
  { path: "channels", title: "Channels", page: channels, level: "management" },
  { path: "exchanges", title: "Exchanges", page: exchanges, level: "management" },
  { path: "queues", title: "Queues", page: queues, level: "management" },
  { path: "admin", title: "Admin", page: admin, level: "policymaker" },
  { path: "definitions", title: "Definitions", page: definitions, level: "administrator" },
];

const REFRESH_KEY = "amqpbroker.refresh";
const REFRESH_CHOICES = [[1000, "every 1 s"], [5000, "every 5 s"], [10000, "every 10 s"],
  [30000, "every 30 s"], [0, "never"]];

let user = null;
let current = null; // { refresh } of the page on screen
let timer = null;
let shown = 0; // the latest show(): an older one still loading must not take over

function makeUser(whoami) {
  const tags = new Set(whoami.tags);
  return { name: whoami.name, tags: [...tags],
    is: (level) => LEVELS[level].some((t) => tags.has(t)) };
}

function refreshEvery() {
  const saved = sessionStorage.getItem(REFRESH_KEY);
  return saved === null ? 5000 : Number(saved);
}

function schedule() {
  clearTimeout(timer);
  const every = refreshEvery();
  if (!every || !current || !current.refresh) return;
  timer = setTimeout(async () => {
    try { await current.refresh(); } finally { schedule(); }
  }, every);
}

function drawHeader(active) {
  const nav = document.getElementById("nav");
  const session = document.getElementById("session");
  if (!user) { replace(nav); replace(session); return; }
  replace(nav, PAGES.filter((p) => user.is(p.level)).map((p) =>
    h("a", { href: `#/${p.path}`, id: `nav-${p.path || "overview"}`,
      class: p === active ? "active" : "" }, p.title)));
  const every = h("select", { id: "refresh-every", onchange: () => {
    sessionStorage.setItem(REFRESH_KEY, every.value); schedule(); } },
  REFRESH_CHOICES.map(([ms, text]) => h("option", { value: ms, selected: ms === refreshEvery() }, `Refresh ${text}`)));
  replace(session, h("span", { id: "whoami" }, `${user.name}`,
    h("small", {}, user.tags.length ? ` (${user.tags.join(", ")})` : "")), every,
  h("button", { type: "button", id: "logout", onclick: () => { api.logout(); user = null; show(); } },
    "Log out"));
}

function loginPage(main, note) {
  const status = h("div");
  replace(main, h("section", { class: "panel login" }, h("h1", {}, "Log in"),
    h("p", { class: "muted" }, "Use a broker user with a management, policymaker, monitoring or administrator tag."),
    status,
    form({ id: "login", submit: "Log in", fields: [
      { name: "username", label: "Username", required: true, autocomplete: "username" },
      { name: "password", label: "Password", type: "password", autocomplete: "current-password" },
    ], onSubmit: async ({ username, password }) => {
      api.login(username, password);
      try {
        user = makeUser(await api.get("/api/whoami"));
      } catch (error) {
        api.logout();
        throw error;
      }
      if (location.hash.startsWith("#/login") || !location.hash) location.hash = "#/";
      show();
      return "Logged in.";
    } })));
  if (note) message(status, note);
}

async function show(note) {
  const mine = ++shown;
  clearTimeout(timer);
  current = null;
  const main = document.getElementById("main");
  if (user === null && api.loggedIn()) {
    try { user = makeUser(await api.get("/api/whoami")); } catch { api.logout(); }
    if (mine !== shown) return;
  }
  if (user === null) {
    drawHeader(null);
    loginPage(main, note);
    return;
  }
  const [first, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const args = rest.map((s) => decodeURIComponent(s));
  const entry = PAGES.find((p) => p.path === decodeURIComponent(first || "")) || PAGES[0];
  drawHeader(entry);
  if (!user.is(entry.level)) {
    replace(main, h("p", { class: "message error", id: "forbidden" },
      `${entry.title}: the user's tags (${user.tags.join(", ") || "none"}) do not allow this page.`));
    return;
  }
  const page = h("div", { id: "page" });
  replace(main, page);
  let loaded = null;
  try {
    loaded = await entry.page.render(page, args, user);
  } catch (error) {
    if (mine === shown) replace(page, h("p", { class: "message error", id: "page-error" }, error.message));
  }
  if (mine !== shown) return;
  current = loaded;
  schedule();
}

window.addEventListener("hashchange", () => show());
window.addEventListener("api-unauthorised", () => {
  if (user === null) return; // a failed login: the login form shows the reason
  api.logout();
  user = null;
  show("Login failed: the user or its password changed. Log in again.");
});
show();

// The management HTTP API, called with the logged-in user's credentials.
// Credentials live in sessionStorage (gone when the tab closes), as RabbitMQ's UI keeps
// them; every call sends them as HTTP basic auth. When they stop working (the user was
// deleted or its password changed) the app goes back to the login form. X-Requested-With asks the server not to
// send a Basic challenge, so the browser never pops its own login dialog over ours.

const KEY = "amqpbroker.auth";

export class ApiError extends Error {
  constructor(status, reason) {
    super(reason || `HTTP ${status}`);
    this.status = status;
  }
}

export function login(username, password) {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  sessionStorage.setItem(KEY, btoa(String.fromCharCode(...bytes)));
}

export function logout() {
  sessionStorage.removeItem(KEY);
}

export function loggedIn() {
  return sessionStorage.getItem(KEY) !== null;
}

// A path from segments: each one percent-encoded, so the vhost "/" is %2F.
export function path(...segments) {
  return "/api/" + segments.map((s) => encodeURIComponent(s)).join("/");
}

function withQuery(url, query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const text = params.toString();
  return text ? `${url}?${text}` : url;
}

export async function call(method, url, { body, query, headers } = {}) {
  const init = { method, headers: { "X-Requested-With": "XMLHttpRequest", ...headers } };
  const auth = sessionStorage.getItem(KEY);
  if (auth) init.headers.Authorization = `Basic ${auth}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(withQuery(url, query), init);
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!response.ok) {
    const reason = data && typeof data === "object" ? data.reason : data;
    const error = new ApiError(response.status, reason);
    if (response.status === 401 && reason === "Login failed") window.dispatchEvent(new CustomEvent("api-unauthorised", { detail: error }));
    throw error;
  }
  return data;
}

export const get = (url, query) => call("GET", url, { query });
export const put = (url, body) => call("PUT", url, { body: body ?? {} });
export const post = (url, body) => call("POST", url, { body: body ?? {} });
export const del = (url, headers) => call("DELETE", url, { headers });

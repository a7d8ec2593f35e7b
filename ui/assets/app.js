// The clusters page: polls api/state, renders rows in place, and sends
// scale, stop and create with the page's CSRF token. No dependencies.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const scheme = document.querySelector('meta[name="auth-scheme"]').content;
const POLL_MS = 2000;
const rows = new Map(); // cluster name -> {tr, cells, input}
let fields = [];

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function say(text, isError) {
  const m = document.getElementById("message");
  m.textContent = text;
  m.className = isError ? "error" : "";
}

// api sends a request of the page; a 401 means the session ended: the
// reload signs in again (at the hub, or the browser's password prompt).
async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { "X-Daskgate-Csrf": csrf } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (resp.status === 401) {
    // Once per half minute at most: a login that keeps failing shows why
    // instead of reloading forever.
    const last = Number(sessionStorage.getItem("daskgate-reload") || 0);
    if (Date.now() - last > 30000) {
      sessionStorage.setItem("daskgate-reload", String(Date.now()));
      location.reload();
    }
    throw new Error("signed out: reload the page to sign in again");
  }
  const text = await resp.text();
  const data = text ? JSON.parse(text) : {};
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}

// ---- formatting ----
function bytes(n) {
  if (!n) return "0";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(n < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function py(v) {
  if (v === true) return "True";
  if (v === false) return "False";
  if (v === null) return "None";
  if (typeof v === "object") {
    const items = Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${py(x)}`);
    return `{${items.join(", ")}}`;
  }
  return JSON.stringify(v);
}

function activity(c, now) {
  if (c.status !== "RUNNING") return "";
  const parts = [];
  if (c.clients !== null && c.clients !== undefined) parts.push(`${c.clients} client${c.clients === 1 ? "" : "s"}`);
  if (c.busy) parts.push("busy");
  else if (c.idle_since) parts.push(`idle ${duration(now - c.idle_since)}`);
  if (c.last_client_timeout && c.clients === 0 && c.last_client) {
    parts.push(`stops in ${duration(c.last_client + c.last_client_timeout * 1000 - now)} without a client`);
  }
  return parts.join(" · ") || "not checked yet";
}

// ---- the cluster table ----
function newRow(c) {
  const cells = {};
  const tr = el("tr", { "data-cluster": c.name });
  for (const k of ["name", "owner", "status", "workers", "cores", "memory", "age", "activity", "options", "actions"]) {
    cells[k] = el("td", { class: ["workers", "cores", "memory", "age"].includes(k) ? "num" : `col-${k}` });
    tr.append(cells[k]);
  }
  cells.name.append(el("code", { title: c.name }, c.name.slice(-12)));
  const input = el("input", { type: "number", min: "0", step: "1", "aria-label": `Workers for ${c.name}`, value: String(c.workers) });
  const scale = el("button", { type: "button", class: "scale", onclick: () => doScale(c.name, input) }, "Scale");
  const stop = el("button", { type: "button", class: "stop danger", onclick: (e) => doStop(c.name, e.target) }, "Stop");
  const connect = el("button", { type: "button", class: "connect", onclick: () => showSnippet(connectSnippet(c.name)) }, "Python");
  const dash = el("a", { class: "dashboard", target: "_blank", rel: "noopener" }, "Dashboard");
  cells.actions.append(el("div", { class: "actions" }, dash, input, scale, stop, connect));
  const row = { tr, cells, input, scale, stop, dash };
  rows.set(c.name, row);
  return row;
}

function updateRow(row, c, now, me) {
  const { cells } = row;
  cells.owner.textContent = c.owner === me ? "you" : c.owner;
  const badge = el("span", { class: `status ${c.status}` }, c.status);
  cells.status.replaceChildren(badge);
  if (c.reason) cells.status.append(el("span", { class: "reason" }, c.reason));
  cells.workers.textContent = c.max_workers !== null && c.max_workers !== undefined ? `${c.workers} / ${c.max_workers}` : String(c.workers);
  cells.cores.textContent = String(c.cores);
  cells.memory.textContent = bytes(c.memory);
  cells.age.textContent = duration((c.stop_time || now) - c.start_time);
  cells.activity.textContent = activity(c, now);
  const opts = Object.entries(c.options || {});
  cells.options.replaceChildren(el("ul", { class: "opts" }, ...opts.map(([k, v]) => el("li", {}, `${k} = ${py(v)}`))));
  const active = c.status === "RUNNING" || c.status === "PENDING";
  row.dash.hidden = !c.dashboard;
  if (c.dashboard) row.dash.href = c.dashboard;
  row.input.hidden = row.scale.hidden = !(active && c.can_scale && c.status === "RUNNING");
  row.stop.hidden = !(active && c.can_stop);
  if (document.activeElement !== row.input && !row.input.dataset.dirty) row.input.value = String(c.workers);
}

function render(state) {
  const now = state.now;
  const u = state.usage;
  const q = state.quota || {};
  // "3 of 16 cores" where the policy states a quota (authz.quota), else "3 cores".
  const part = (used, key, one, many, fmt = String) => {
    const limit = key in q ? q[key] : undefined;
    const label = (limit === undefined ? used : limit) === 1 ? one : many;
    return `${fmt(used)}${limit === undefined ? "" : ` of ${typeof limit === "number" ? fmt(limit) : limit}`} ${label}`;
  };
  const parts = [part(u.clusters, "clusters", "active cluster", "active clusters"),
    part(u.workers, "workers", "worker", "workers"), part(u.cores, "cores", "core", "cores"),
    part(u.memory, "memory", "memory", "memory", bytes)];
  for (const [k, v] of Object.entries(q)) {
    if (!["clusters", "workers", "cores", "memory"].includes(k)) parts.push(`${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
  }
  document.getElementById("usage").textContent = parts.join(", ");
  const tbody = document.querySelector("#clusters tbody");
  const seen = new Set();
  state.clusters.forEach((c, i) => {
    seen.add(c.name);
    const row = rows.get(c.name) || newRow(c);
    updateRow(row, c, now, state.user.name);
    // The server's order (oldest first); a row is moved only when out of
    // place, so an input in it keeps its focus.
    if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] || null);
  });
  for (const [name, row] of rows) {
    if (!seen.has(name)) { row.tr.remove(); rows.delete(name); }
  }
  document.getElementById("empty").hidden = state.clusters.length > 0;
}

async function refresh() {
  try {
    render(await api("GET", "api/state"));
  } catch (e) {
    say(`Could not load clusters: ${e.message}`, true);
  }
}

function poll() {
  if (!document.hidden) refresh();
  setTimeout(poll, POLL_MS);
}

// ---- actions ----
async function doScale(name, input) {
  const n = Number(input.value);
  if (!Number.isInteger(n) || n < 0) { say("Workers must be a whole number, 0 or more", true); return; }
  try {
    const r = await api("POST", `api/clusters/${encodeURIComponent(name)}/scale`, { count: n });
    delete input.dataset.dirty;
    say(r.msg || `Scaling ${name.slice(-12)} to ${n} worker${n === 1 ? "" : "s"}`);
    refresh();
  } catch (e) { say(`Scale failed: ${e.message}`, true); }
}

// doStop asks twice: the first click arms the button for five seconds.
async function doStop(name, button) {
  if (!button.dataset.armed) {
    button.dataset.armed = "1";
    button.textContent = "Confirm stop";
    setTimeout(() => { delete button.dataset.armed; button.textContent = "Stop"; }, 5000);
    return;
  }
  try {
    await api("POST", `api/clusters/${encodeURIComponent(name)}/stop`);
    say(`Stopping ${name.slice(-12)}`);
    refresh();
  } catch (e) { say(`Stop failed: ${e.message}`, true); }
}

// ---- the option form and the Python snippet ----
function fieldInput(f) {
  const id = `opt-${f.field}`;
  const s = f.spec;
  let input;
  if (s.type === "bool") {
    input = el("input", { id, type: "checkbox" });
    input.checked = !!f.default;
  } else if (s.type === "select") {
    input = el("select", { id }, ...s.options.map((o) => el("option", { value: o }, o)));
    input.value = f.default;
  } else if (s.type === "int" || s.type === "float") {
    input = el("input", { id, type: "number", step: s.type === "int" ? "1" : "any", value: String(f.default) });
    if (s.min !== null && s.min !== undefined) input.min = String(s.min);
    if (s.max !== null && s.max !== undefined) input.max = String(s.max);
  } else if (s.type === "mapping") {
    input = el("textarea", { id });
    input.value = JSON.stringify(f.default || {});
  } else {
    input = el("input", { id, type: "text", value: f.default || "" });
  }
  input.dataset.field = f.field;
  input.addEventListener("input", () => showSnippet(newSnippet()));
  return [el("label", { for: id }, f.label || f.field), input];
}

function formValues() {
  const out = {};
  for (const f of fields) {
    const input = document.getElementById(`opt-${f.field}`);
    const t = f.spec.type;
    if (t === "bool") out[f.field] = input.checked;
    else if (t === "int") out[f.field] = parseInt(input.value, 10);
    else if (t === "float") out[f.field] = parseFloat(input.value);
    else if (t === "mapping") out[f.field] = JSON.parse(input.value || "{}");
    else out[f.field] = input.value;
  }
  return out;
}

// gatewayLine makes the client's Gateway. Beside JupyterHub, notebooks
// have the gateway's addresses in their environment (DASK_GATEWAY__*, as
// daskhub sets them), including the proxy address the page cannot know.
function gatewayLine() {
  const address = location.origin + location.pathname.replace(/\/ui\/?$/, "");
  if (scheme === "jupyterhub") {
    return `# in this hub's notebooks; elsewhere: Gateway(${JSON.stringify(address)}, proxy_address=..., auth="jupyterhub")\n` +
      "gateway = Gateway()";
  }
  const authArg = { Basic: "basic", Negotiate: "kerberos" }[scheme];
  return `gateway = Gateway(${JSON.stringify(address)}${authArg ? `, auth=${JSON.stringify(authArg)}` : ""})`;
}

function newSnippet() {
  const lines = ["from dask_gateway import Gateway", gatewayLine()];
  let values = {};
  try { values = formValues(); } catch (e) { /* a mapping being typed */ }
  const changed = fields.filter((f) => JSON.stringify(values[f.field]) !== JSON.stringify(f.default));
  if (changed.length) {
    lines.push("options = gateway.cluster_options()");
    for (const f of changed) lines.push(`options.${f.field} = ${py(values[f.field])}`);
    lines.push("cluster = gateway.new_cluster(options)");
  } else {
    lines.push("cluster = gateway.new_cluster()");
  }
  lines.push("client = cluster.get_client()");
  return lines.join("\n");
}

function connectSnippet(name) {
  return ["from dask_gateway import Gateway", gatewayLine(), `cluster = gateway.connect(${JSON.stringify(name)})`,
    "client = cluster.get_client()"].join("\n");
}

function showSnippet(text) { document.getElementById("snippet").textContent = text; }

async function loadForm() {
  try {
    fields = (await api("GET", "../api/v1/options")).cluster_options;
  } catch (e) {
    say(`Could not load the cluster options: ${e.message}`, true);
    return;
  }
  document.getElementById("fields").replaceChildren(...fields.flatMap(fieldInput));
  showSnippet(newSnippet());
}

async function create(ev) {
  ev.preventDefault();
  let values;
  try { values = formValues(); } catch (e) { say(`Options: ${e.message}`, true); return; }
  const button = document.getElementById("create");
  button.disabled = true;
  try {
    const r = await api("POST", "api/clusters", { cluster_options: values });
    say(`Started cluster ${r.name}`);
    showSnippet(connectSnippet(r.name));
    refresh();
  } catch (e) {
    say(`Could not start a cluster: ${e.message}`, true);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("new-cluster").addEventListener("submit", create);
  document.getElementById("copy-snippet").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(document.getElementById("snippet").textContent);
      say("Copied");
    } catch (e) { say("Select the text and copy it", true); }
  });
  // A worker count being edited is not overwritten by the next poll; an
  // edit left alone for ten seconds gives way to the real count again.
  const tbody = document.querySelector("#clusters tbody");
  tbody.addEventListener("input", (e) => { if (e.target.type === "number") e.target.dataset.dirty = "1"; });
  tbody.addEventListener("focusout", (e) => {
    if (e.target.type === "number") setTimeout(() => { if (document.activeElement !== e.target) delete e.target.dataset.dirty; }, 10000);
  });
  loadForm();
  poll();
});

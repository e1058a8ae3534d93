// xprov's status page: the operator's view of a running xprov, served by its admin listener.
//
// Data source: GET /status (bearer token), polled every `page.refresh_s` seconds after the
// last answer; actions: POST /failover {service, site, force} and POST /failback {service,
// force}, whose 200 answer is the new status. The status document is `Service.status()`
// (docs/architecture.md); this file reads these keys of it:
//   now, version, uptime_s, page.refresh_s, reactor_lag.{last_minute_max_s, max_s},
//   inventory.{phones, source, age_s, generation}, restart_pending,
//   config.{reload_in_progress.for_s, reloads.{ok, failed, last.{at, ok, problems}}},
//   convergence.{generation, since, regular_phones, fetched, pending, silent, percent, p50_s,
//     slowest_s},
//   monitor.{switching_suspended, services.<s>.{active, why, holding, manual, primary, sites,
//     since, manual_at, manual_by}, switches[].{at, service, before, after, by, reason,
//     detection_s}, targets.<service@site>.{service, site, probe, state, for_s, last.{ok,
//     cause, detail, latency_ms}, recent[[at, outcome, latency_ms]], transitions[].{at,
//     before, after, reason}}},
//   cluster.{mode, name, role, agreement, since, problem, inventories_agree, local_overrides,
//     restart_pending, observers.<name>.{role, inventory, targets.<target>}, agreed.<target>}
//
// Security: the page runs under a CSP without inline script or style. Every text that comes
// from the server (a probe's detail may quote a remote server) is set with textContent on
// elements made by createElement: never innerHTML. Among the page's own words it sits in an
// element of its own that the style sheet isolates (unicode-bidi: isolate; in an attribute,
// between FSI and PDI): a right-to-left override in it cannot reverse the words around it.
// The token lives in sessionStorage only.
"use strict";

const TOKEN_KEY = "xprov.token";
const DEFAULT_REFRESH_S = 1; // until the first answer tells page.refresh_s
const MIN_REFRESH_S = 0.2; // the config's floor for page_refresh: never a busy loop
const MIN_TIMEOUT_S = 5; // a poll is lost after max(5 s, 3 x refresh) without an answer
const TRANSITIONS_SHOWN = 3; // newest transitions listed per target
const SERVICE_ORDER = ["sip", "stun", "db"];
const AGREED = new Set(["ok", "agreed"]); // cluster.agreement when the observers agree
const ICONS = { up: "✓", down: "✗", unknown: "?", timeout: "⌛", "not made": "⊘" };
// The longest token the form sends. The configuration asks for 16 characters or more; a
// header far longer makes the admin listener close the connection, which the page could
// only report as no answer at all.
const MAX_TOKEN_CHARS = 1024;
const TOKEN_REFUSED = "The admin token is at most 1,024 printable ASCII characters.";

// One signed-in session: `epoch` changes at each sign-in/out so that an answer to an
// earlier session's request is dropped instead of rendered.
const session = {
  token: null,
  epoch: 0,
  timer: null,
  controller: null,
  refreshS: DEFAULT_REFRESH_S,
  lastUpdate: null, // Date of the last good answer (browser clock: when we heard)
  sent: 0, // requests sent for a status (polls and actions), numbered in order
  shown: 0, // the number of the request whose status is on screen (older ones are dropped)
  status: null,
  busy: false, // an action is in flight
};
let pendingAction = null; // what the confirmation dialog will do

// ---- DOM helpers -----------------------------------------------------------------------

const $ = (selector, root = document) => root.querySelector(selector);

// An element with a class, text (always textContent) and children.
function el(tag, options = {}, ...children) {
  const node = document.createElement(tag);
  if (options.class) node.className = options.class;
  if (options.text !== undefined) node.textContent = String(options.text);
  for (const [name, value] of Object.entries(options.attrs || {})) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// Changes a node's text only when it differs (no mutation, no lost selection otherwise).
function setText(node, text) {
  const value = text === null || text === undefined ? "" : String(text);
  if (node.textContent !== value) node.textContent = value;
}

function setAttr(node, name, value) {
  if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}

// A text of the server among the page's words: see setParts.
const srv = (text) => ({ srv: text === null || text === undefined ? "" : String(text) });
const srvService = (service) => srv(serviceLabel(service));

// A text of the server in an attribute (a title): between FIRST STRONG ISOLATE and POP
// DIRECTIONAL ISOLATE, which close any override it opens (Unicode UAX #9, X5c-X6a).
const isolated = (text) => `\u2068${text ?? ""}\u2069`;

const partsText = (parts) => parts.map((p) => (typeof p === "string" ? p : p.srv)).join("");
const shownParts = new WeakMap(); // node -> the parts it shows

// Makes `node`'s children `parts`: strings (the page's words) as text, {srv: text} (from the
// server) each in a span.srv, which the style sheet isolates. Only when they differ.
function setParts(node, parts) {
  const key = JSON.stringify(parts);
  if (shownParts.get(node) === key && node.textContent === partsText(parts)) return;
  shownParts.set(node, key);
  node.replaceChildren(
    ...parts.map((p) => (typeof p === "string" ? p : el("span", { class: "srv", text: p.srv }))),
  );
}

// Server texts separated by ", ".
const listParts = (texts) => texts.flatMap((t, i) => (i ? [", ", srv(t)] : [srv(t)]));

// Makes `parent`'s children one element per item, in order, reusing the element whose
// data-<keyName> is the item's key (focus, open tooltips and test handles survive a poll).
function sync(parent, items, keyOf, keyName, create, update) {
  const old = new Map();
  for (const child of Array.from(parent.children)) {
    const key = child.dataset[keyName];
    if (old.has(key))
      child.remove(); // a key seen twice: one element per key
    else old.set(key, child);
  }
  let previous = null;
  for (const item of items) {
    const key = String(keyOf(item));
    let node = old.get(key);
    if (node) old.delete(key);
    else {
      node = create(item);
      node.dataset[keyName] = key;
    }
    update(node, item);
    const wanted = previous ? previous.nextElementSibling : parent.firstElementChild;
    if (wanted !== node) parent.insertBefore(node, wanted);
    previous = node;
  }
  for (const node of old.values()) node.remove();
}

// ---- formatting --------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");

// Epoch seconds as local HH:MM:SS, with the date when it is not the day of `now`.
function clock(epoch, now) {
  if (typeof epoch !== "number") return "–";
  const at = new Date(epoch * 1000);
  const time = `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
  const today = new Date((now ?? epoch) * 1000);
  if (at.toDateString() === today.toDateString()) return time;
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${time}`;
}

// A duration in seconds for people: "4.7 s", "3 min 20 s", "2 h 5 min", "3 d 4 h".
function duration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, seconds);
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

// "12:00:01 (3 min 20 s ago)", relative to the server's `now`, not the browser's clock.
function whenAgo(epoch, now) {
  if (typeof epoch !== "number") return "–";
  return `${clock(epoch, now)} (${duration(now - epoch)} ago)`;
}

const ms = (value) => (typeof value === "number" ? `${value} ms` : "–");
const seconds = (value) => (typeof value === "number" ? `${value} s` : "–");
const serviceLabel = (service) => String(service).toUpperCase();
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// An icon (hidden from screen readers) and the word: states never by colour alone.
function stateBadge(state, extraClass = "") {
  const name = String(state ?? "unknown");
  return el(
    "span",
    { class: `badge ${extraClass}`.trim(), attrs: { "data-state": name } },
    el("span", { class: "icon", text: ICONS[name] ?? "•", attrs: { "aria-hidden": "true" } }),
    el("span", { class: "word", text: name }),
  );
}

function updateBadge(badge, state) {
  const name = String(state ?? "unknown");
  setAttr(badge, "data-state", name);
  setText($(".icon", badge), ICONS[name] ?? "•");
  setText($(".word", badge), name);
}

// ---- talking to the server ---------------------------------------------------------------

// One request with the bearer token; resolves to {status, body, seq} (body: parsed JSON or
// null; seq: its number in sending order), rejects on a network error or when `signal` aborts.
async function request(path, token, { method = "GET", body, signal } = {}) {
  const seq = ++session.sent;
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
    signal,
  });
  let parsed = null;
  try {
    parsed = await response.json();
  } catch {
    parsed = null; // not JSON: the caller sees the status code alone
  }
  return { status: response.status, body: parsed, seq };
}

const timeoutS = () => Math.max(MIN_TIMEOUT_S, 3 * session.refreshS);

// GET /status with the poll's deadline.
async function fetchStatus(token) {
  const controller = new AbortController();
  session.controller = controller;
  const deadline = setTimeout(() => controller.abort(), timeoutS() * 1000);
  try {
    return await request("/status", token, { signal: controller.signal });
  } finally {
    clearTimeout(deadline);
    if (session.controller === controller) session.controller = null;
  }
}

const isStatus = (body) => body !== null && typeof body === "object" && "now" in body;

// ---- sign in and out -----------------------------------------------------------------------

function showLogin(message) {
  $("#login").hidden = false;
  $("#logout").hidden = true;
  $("#connection").hidden = true;
  setText($("#login-error"), message || "");
  $("#token").value = "";
  $("#token").focus();
}

// The token as the header needs it: trimmed, printable ASCII (fetch throws on other
// characters), at most MAX_TOKEN_CHARS; refused here, before any request, otherwise.
function readToken() {
  const token = $("#token").value.trim();
  if (!token) return { error: "Type the admin token." };
  if (token.length > MAX_TOKEN_CHARS || !/^[\x20-\x7e]+$/.test(token)) {
    return { error: TOKEN_REFUSED };
  }
  return { token };
}

async function onLogin(event) {
  event.preventDefault(); // never submitted: the token goes in a header, not a URL
  const { token, error } = readToken();
  if (error) {
    setText($("#login-error"), error);
    return;
  }
  const button = $("#login button[type=submit]");
  button.disabled = true;
  setText($("#login-error"), "");
  try {
    const answer = await fetchStatus(token);
    if (answer.status === 200 && isStatus(answer.body)) startSession(token, answer);
    else if (answer.status === 401) {
      setText($("#login-error"), "Wrong admin token: the server refused it (401).");
    } else {
      setText($("#login-error"), `The server answered ${answer.status}; try again.`);
    }
  } catch {
    setText($("#login-error"), "No answer from the server; is xprov running?");
  } finally {
    button.disabled = false;
  }
}

// Signed in: `answer` is the first 200 /status; polling starts from it.
function startSession(token, answer) {
  sessionStorage.setItem(TOKEN_KEY, token);
  session.token = token;
  session.epoch += 1;
  $("#login").hidden = true;
  $("#token").value = "";
  setText($("#login-error"), "");
  $("#logout").hidden = false;
  received(answer);
  schedulePoll(session.epoch);
}

// Forgets the token and everything shown of the status; `message` says why on the form.
function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  session.token = null;
  session.epoch += 1;
  clearTimeout(session.timer);
  if (session.controller) session.controller.abort();
  session.status = null;
  session.lastUpdate = null;
  session.shown = 0;
  session.refreshS = DEFAULT_REFRESH_S;
  closeConfirm();
  clearDashboard();
  showLogin(message);
}

// Removes every text that came from a status document.
function clearDashboard() {
  $("#dashboard").hidden = true;
  $("#cluster").hidden = true;
  for (const node of document.querySelectorAll(
    "#alerts, #services .service-list, #dashboard .body, #dashboard tbody, " +
      "#dashboard tfoot, #cluster thead tr, #targets .range",
  )) {
    node.replaceChildren();
  }
  setText($("#switches .empty"), "");
  $("#reload").removeAttribute("data-result");
  const result = $("#action-result");
  setText(result, "");
  result.removeAttribute("data-outcome");
  const connection = $("#connection");
  setText(connection, "");
  connection.removeAttribute("data-state");
}

// ---- polling -----------------------------------------------------------------------------

function schedulePoll(epoch) {
  clearTimeout(session.timer);
  session.timer = setTimeout(() => poll(epoch), session.refreshS * 1000);
}

// One poll, then the next one `refresh_s` after this answer: polls never overlap.
async function poll(epoch) {
  let answer = null;
  try {
    answer = await fetchStatus(session.token);
  } catch {
    answer = null; // network error or no answer in time
  }
  if (epoch !== session.epoch) return; // signed out (or in again) meanwhile
  if (answer && answer.status === 401) {
    signOut("The server no longer accepts this token.");
    return;
  }
  if (answer && answer.status === 200 && isStatus(answer.body)) received(answer);
  else showLost();
  schedulePoll(epoch);
}

// A 200 with a status: render it and say the page is live. A poll sent before an action
// but answered after it holds an older state: dropped.
function received({ body: status, seq }) {
  if (seq < session.shown) return;
  session.shown = seq;
  session.status = status;
  session.lastUpdate = new Date();
  const refresh = status.page?.refresh_s;
  session.refreshS =
    typeof refresh === "number" && refresh > 0
      ? Math.max(MIN_REFRESH_S, refresh)
      : DEFAULT_REFRESH_S;
  render(status);
  const connection = $("#connection");
  connection.hidden = false;
  setAttr(connection, "data-state", "live");
  setText(connection, `Live, updated ${localTime(session.lastUpdate)}`);
  $("#dashboard").classList.remove("stale");
}

function showLost() {
  const connection = $("#connection");
  connection.hidden = false;
  setAttr(connection, "data-state", "lost");
  setText(
    connection,
    session.lastUpdate
      ? `Connection lost; last update ${localTime(session.lastUpdate)}`
      : "Connection lost; no update yet, retrying",
  );
  $("#dashboard").classList.add("stale");
}

const localTime = (date) =>
  `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;

// ---- rendering ---------------------------------------------------------------------------

const RENDERERS = [
  ["#alerts", renderAlerts],
  ["#services", renderServices],
  ["#targets", renderTargets],
  ["#switches", renderSwitches],
  ["#convergence", renderConvergence],
  ["#inventory", renderInventory],
  ["#reload", renderReload],
  ["#process", renderProcess],
  ["#cluster", renderCluster],
];

// Every section from one status; a section that cannot be drawn says so and spares the rest.
function render(status) {
  $("#dashboard").hidden = false;
  for (const [selector, renderer] of RENDERERS) {
    const section = $(selector);
    try {
      renderer(status, section);
      section.classList.remove("broken");
    } catch (error) {
      console.error(`cannot render ${selector}`, error);
      section.classList.add("broken");
    }
  }
}

// What needs attention across sections: suspended switching, a service held by hand at a
// site that is down, a reload, a restart pending. Each alert is parts (see setParts).
function renderAlerts(status, box) {
  const alerts = [];
  if (status.monitor?.switching_suspended) {
    alerts.push(["Switching suspended: every target fails at once (our own network is suspect)."]);
  }
  for (const [name, info] of Object.entries(status.monitor?.services ?? {})) {
    const held = heldDown(name, info, status);
    if (held) alerts.push(held);
  }
  const running = status.config?.reload_in_progress;
  if (running) alerts.push([`Reload in progress for ${duration(running.for_s)}.`]);
  const pending = status.restart_pending ?? status.cluster?.restart_pending ?? [];
  if (pending.length) alerts.push(["Restart pending for ", ...listParts(pending), "."]);
  alerts.push(...clusterAlerts(status.cluster));
  sync(
    box,
    alerts,
    (parts) => JSON.stringify(parts),
    "alert",
    () => el("p", { class: "alert" }, warnIcon(), el("span")),
    (node, parts) => setParts($("span:last-child", node), parts),
  );
}

// Cluster mode: no agreement (the last decision stands), local overrides of this instance.
function clusterAlerts(cluster) {
  if (cluster?.mode !== "etcd") return [];
  const alerts = [];
  if (cluster.agreement === "starting") alerts.push(["Cluster starting: no answer from etcd yet."]);
  else if (!AGREED.has(cluster.agreement)) {
    alerts.push([
      "No cluster agreement (",
      srv(cluster.agreement),
      "): the last decision stands.",
    ]);
  }
  for (const [service, site] of Object.entries(cluster.local_overrides ?? {})) {
    alerts.push([
      "Local override: ",
      srvService(service),
      " at ",
      srv(site),
      " on this instance only.",
    ]);
  }
  return alerts;
}

// A service pinned by an operator to a site whose target is down: the monitor will not move
// it, so the operator must. Parts of the alert, or null.
function heldDown(name, info, status) {
  if (!info.manual) return null;
  if (status.monitor?.targets?.[`${name}@${info.active}`]?.state !== "down") return null;
  const sites = sitesOf(name, info, status);
  const elsewhere = failoverSites(info, sites, info.primary ?? sites[0]).length > 0;
  const site = srv(info.active);
  return [
    srvService(name),
    " is held at ",
    site,
    " by an operator's choice, and ",
    site,
    ` is down: ${elsewhere ? "fail over, or fail back" : "fail back"} to let the monitor decide.`,
  ];
}

const warnIcon = () => el("span", { class: "icon", text: "⚠", attrs: { "aria-hidden": "true" } });

// Services: one card per service with its active site, why, since, a manual choice and the
// buttons to move it.
function renderServices(status, section) {
  const list = $(".service-list", section);
  const services = status.monitor?.services;
  if (!services) {
    list.replaceChildren(
      el("p", { class: "empty", text: "The monitor is disabled: no service is watched here." }),
    );
    return;
  }
  const names = Object.keys(services).sort((a, b) => orderOf(a) - orderOf(b) || a.localeCompare(b));
  sync(
    list,
    names,
    (name) => name,
    "service",
    createServiceCard,
    (card, name) => updateServiceCard(card, name, services[name], status),
  );
}

const orderOf = (service) => {
  const index = SERVICE_ORDER.indexOf(service);
  return index < 0 ? SERVICE_ORDER.length : index;
};

function createServiceCard(name) {
  const title = el("h3", { text: serviceLabel(name) });
  return el(
    "article",
    { class: "service card", attrs: { "aria-label": `${serviceLabel(name)} service` } },
    el("header", {}, title, el("span", { class: "tag", text: "manual" })),
    el(
      "p",
      { class: "where" },
      "Active at ",
      el("strong", { class: "active" }),
      " ",
      stateBadge("unknown", "active-state"),
      el("span", { class: "role" }),
    ),
    el("p", { class: "why" }),
    el("p", { class: "since" }),
    el("p", { class: "manual" }),
    el("p", { class: "held" }),
    el("p", { class: "holding" }),
    el("div", { class: "actions" }),
  );
}

function updateServiceCard(card, name, info, status) {
  const now = status.now;
  const sites = sitesOf(name, info, status);
  const primary = info.primary ?? sites[0];
  const target = status.monitor.targets?.[`${name}@${info.active}`];
  updateBadge($(".active-state", card), target?.state ?? "unknown");
  setText($(".active", card), info.active);
  setText($(".role", card), info.active === primary ? " (primary)" : " (not the primary)");
  setParts($(".why", card), info.why ? ["Why: ", srv(info.why)] : []);
  setText(
    $(".since", card),
    typeof info.since === "number" ? `Since ${whenAgo(info.since, now)}` : "",
  );
  const manual = $(".manual", card);
  manual.hidden = !info.manual;
  setParts(manual, info.manual ? manualParts(info, now) : []);
  const held = $(".held", card);
  const heldParts = heldDown(name, info, status);
  held.hidden = !heldParts;
  setParts(held, heldParts ?? []);
  const holding = $(".holding", card);
  holding.hidden = !info.holding;
  setParts(holding, info.holding ? ["Cannot switch: ", srv(info.holding)] : []);
  card.classList.toggle("is-manual", Boolean(info.manual));
  $(".tag", card).hidden = !info.manual;
  updateActions($(".actions", card), name, info, sites, primary);
}

// A service's sites, primary first: `sites` when the server gives it, else from the targets.
function sitesOf(name, info, status) {
  if (Array.isArray(info.sites) && info.sites.length) return info.sites;
  const sites = Object.values(status.monitor.targets ?? {})
    .filter((t) => t.service === name)
    .map((t) => t.site);
  return [...new Set([info.primary, info.active, ...sites].filter(Boolean))];
}

function manualParts(info, now) {
  const who = info.manual_by ? [" by ", srv(info.manual_by)] : [];
  const when = typeof info.manual_at === "number" ? ` at ${whenAgo(info.manual_at, now)}` : "";
  return ["Manual choice: ", srv(info.manual), ...who, `${when}; it stays until fail back.`];
}

// The sites a failover button goes to: neither the active one nor the primary. A manual
// switch to the primary would pin it there and silently stop automatic failover; failback
// goes there and hands the service back to the automatic rule.
const failoverSites = (info, sites, primary) =>
  sites.filter((site) => site !== info.active && site !== primary);

// A failover button per site that is neither active nor primary; failback when manual or
// away from the primary.
function updateActions(box, name, info, sites, primary) {
  const label = srvService(name);
  const buttons = failoverSites(info, sites, primary).map((site) => ({
    kind: "failover",
    site,
    parts: ["Switch ", label, " to ", srv(site)],
  }));
  if (info.manual || info.active !== primary) {
    buttons.push({
      kind: "failback",
      site: primary,
      parts: ["Fail back ", label, " to ", srv(primary)],
    });
  }
  sync(
    box,
    buttons,
    (b) => `${b.kind}:${b.site}`,
    "key",
    (b) =>
      el("button", {
        class: b.kind,
        attrs: { type: "button", "data-service": name, "data-site": b.site },
      }),
    (button, b) => {
      setParts(button, b.parts);
      button.disabled = session.busy;
    },
  );
}

// Probe targets: one row per target, with its state, latency, last error, a strip of its
// recent results and its recent transitions.
function renderTargets(status, section) {
  const targets = status.monitor?.targets ?? {};
  const names = Object.keys(targets).sort(byServiceThenName);
  setText($(".legend .range", section), recentRange(Object.values(targets), status.now));
  sync(
    $("tbody", section),
    names,
    (n) => n,
    "target",
    createTargetRow,
    (row, n) => updateTargetRow(row, n, targets[n], status.now),
  );
  section.hidden = names.length === 0;
}

function createTargetRow() {
  return el(
    "tr",
    { class: "target" },
    el(
      "th",
      { attrs: { scope: "row" } },
      el("span", { class: "name" }),
      el("span", { class: "probe" }),
    ),
    el("td", {}, stateBadge("unknown", "state"), el("span", { class: "for" })),
    el("td", { class: "latency" }),
    el("td", { class: "detail" }),
    el("td", {}, el("div", { class: "strip", attrs: { role: "img" } })),
    el("td", {}, el("ul", { class: "transitions" })),
  );
}

// What the strips show, from the results themselves: the server keeps a bounded number per
// target, so their time span depends on the monitor's interval.
function recentRange(targets, now) {
  const lists = targets.map((t) => resultsOf(t.recent));
  const most = Math.max(0, ...lists.map((r) => r.length));
  if (!most) return "Recent probes: no result yet.";
  const oldest = Math.min(...lists.filter((r) => r.length).map((r) => r[0][0]));
  const upTo = lists.every((r) => r.length === most) ? "the" : "up to the";
  const since = clock(oldest, now);
  return `Recent probes: ${upTo} last ${plural(most, "result")} of each target (since ${since}), oldest left.`;
}

const resultsOf = (recent) =>
  Array.isArray(recent) ? recent.filter((r) => Array.isArray(r) && typeof r[0] === "number") : [];

function updateTargetRow(row, name, target, now) {
  setText($(".name", row), name);
  setText($(".probe", row), target.probe ?? "");
  updateBadge($(".state", row), target.state);
  setText($(".for", row), `for ${duration(target.for_s)}`);
  const last = target.last;
  setText($(".latency", row), last ? ms(last.latency_ms) : "–");
  setParts($(".detail", row), lastParts(last, target));
  updateStrip($(".strip", row), resultsOf(target.recent), now);
  updateTransitions($(".transitions", row), target.transitions ?? [], now);
}

// The last probe's result in words (parts); a failure that is ours (not made) says so.
function lastParts(last, target) {
  if (!last) return ["no probe yet"];
  const detail = last.detail ? srv(last.detail) : last.ok ? "ok" : "failed";
  if (last.ok) return [detail];
  const whose = last.cause === "local" ? "not made (our side): " : "";
  const streak = target.consecutive_failures
    ? ` (${plural(target.consecutive_failures, "failure")} in a row)`
    : "";
  return [whose, detail, streak];
}

// One small mark per result the server keeps (all of `recent`), oldest first; its title
// gives time and latency; the strip's accessible name counts the outcomes.
function updateStrip(strip, shown, now) {
  sync(
    strip,
    shown,
    (r) => r[0],
    "at",
    () => el("span", { class: "mark" }),
    (mark, [at, outcome, latency]) => {
      setAttr(mark, "data-outcome", String(outcome));
      const took = typeof latency === "number" ? `, ${latency} ms` : "";
      setAttr(mark, "title", `${clock(at, now)} ${isolated(outcome)}${took}`);
    },
  );
  const counts = {};
  for (const [, outcome] of shown) counts[outcome] = (counts[outcome] ?? 0) + 1;
  const summary = Object.entries(counts)
    .map(([o, n]) => `${n} ${o}`)
    .join(", ");
  const since = shown.length ? ` since ${clock(shown[0][0], now)}` : "";
  setAttr(strip, "aria-label", `Recent probes${since}: ${summary || "no result"}`);
}

function updateTransitions(list, transitions, now) {
  const newest = transitions.slice(-TRANSITIONS_SHOWN).reverse();
  sync(
    list,
    newest,
    (t) => `${t.at}:${t.after}`,
    "key",
    () => el("li"),
    (item, t) =>
      setParts(item, [
        `${clock(t.at, now)} `,
        srv(t.before),
        " → ",
        srv(t.after),
        ...(t.reason ? [": ", srv(t.reason)] : []),
      ]),
  );
}

// Switches, newest first.
function renderSwitches(status, section) {
  const switches = [...(status.monitor?.switches ?? [])].reverse();
  const now = status.now;
  sync(
    $("tbody", section),
    switches,
    (s) => `${s.at}:${s.service}:${s.after}`,
    "key",
    createSwitchRow,
    (row, s) => {
      setText($(".at", row), clock(s.at, now));
      setAttr($(".at", row), "title", `${duration(now - s.at)} ago`);
      setText($(".service", row), s.service); // shown in capitals by the style sheet
      setText($(".before", row), s.before);
      setText($(".after", row), s.after);
      setText($(".by", row), s.by);
      setText($(".reason", row), s.reason);
      setText(
        $(".detection", row),
        typeof s.detection_s === "number" ? seconds(s.detection_s) : "–",
      );
    },
  );
  const empty = status.monitor ? "No switch since xprov started." : "The monitor is disabled.";
  setText($(".empty", section), switches.length ? "" : empty);
  $(".scroll", section).hidden = switches.length === 0;
}

function createSwitchRow() {
  return el(
    "tr",
    { class: "switch" },
    el("td", { class: "at" }),
    el("td", { class: "service" }),
    el(
      "td",
      { class: "move" },
      el("span", { class: "before" }),
      el("span", { class: "arrow", text: " → " }),
      el("span", { class: "after" }),
    ),
    el("td", { class: "by" }),
    el("td", { class: "reason" }),
    el("td", { class: "detection" }),
  );
}

// Convergence: how many of the phones that poll regularly fetched the current generation.
function renderConvergence(status, section) {
  const c = status.convergence;
  const body = $(".body", section);
  if (!c) {
    body.replaceChildren(el("p", { class: "empty", text: "No convergence report." }));
    return;
  }
  if (!$("#convergence-bar", body)) body.replaceChildren(...convergenceSkeleton());
  const bar = $("#convergence-bar", body);
  // silent: polled before the switch, unheard of for three poll intervals since (counted
  // apart by the server, out of its percentage)
  const silent = c.silent ?? 0;
  const expected = c.regular_phones - silent;
  const none = !c.regular_phones;
  bar.max = none || expected <= 0 ? 1 : expected;
  bar.value = none ? 0 : expected <= 0 ? 1 : c.fetched;
  setText($(".fetched", body), c.fetched);
  setText(
    $(".of", body),
    silent
      ? `of ${expected} phones still polling (${silent} gone quiet)`
      : `of ${c.regular_phones} phones polling regularly`,
  );
  setText($(".percent", body), none ? "–" : `${c.percent}%`);
  setText($(".pending", body), c.pending);
  setText($(".silent", body), silent);
  setText($(".slowest", body), typeof c.slowest_s === "number" ? seconds(c.slowest_s) : "–");
  setText($(".p50", body), typeof c.p50_s === "number" ? seconds(c.p50_s) : "–");
  setText($(".generation", body), c.generation);
  setText($(".since", body), typeof c.since === "number" ? whenAgo(c.since, status.now) : "–");
  const complete = !none && c.pending === 0;
  $(".count", body).hidden = none;
  setText(
    $(".verdict", body),
    none
      ? "Nothing to count: no phone polled in the three poll intervals before the switch."
      : complete
        ? "✓ Complete."
        : "In progress.",
  );
}

function convergenceSkeleton() {
  const bar = el("progress", {
    attrs: { id: "convergence-bar", "aria-labelledby": "convergence-count" },
  });
  return [
    bar,
    el(
      "p",
      { class: "count", attrs: { id: "convergence-count" } },
      el("strong", { class: "fetched" }),
      " ",
      el("span", { class: "of" }),
      " fetched the current generation (",
      el("span", { class: "percent" }),
      ")",
    ),
    el("p", { class: "verdict" }),
    facts([
      ["Pending", "pending"],
      ["Gone quiet", "silent"],
      ["Slowest", "slowest"],
      ["Median", "p50"],
      ["Generation", "generation"],
      ["Since", "since"],
    ]),
  ];
}

// A <dl> of label/value pairs; each value's class is the contract's name for it.
function facts(pairs) {
  const list = el("dl", { class: "facts" });
  for (const [label, name] of pairs)
    list.append(el("div", {}, el("dt", { text: label }), el("dd", { class: name })));
  return list;
}

// Inventory: how many phones, from where, how old, which generation.
function renderInventory(status, section) {
  const inventory = status.inventory;
  const body = $(".body", section);
  if (!$(".phones", body)) {
    body.replaceChildren(
      facts([
        ["Phones", "phones"],
        ["Source", "source"],
        ["Age", "age"],
        ["Generation", "generation"],
      ]),
    );
  }
  setText($(".phones", body), inventory?.phones ?? "–");
  setText($(".source", body), inventory?.source ?? "–");
  setText($(".age", body), duration(inventory?.age_s));
  setText($(".generation", body), inventory?.generation ?? "–");
}

// The last reload of the configuration: its result, its problems if it failed.
function renderReload(status, section) {
  const config = status.config;
  const box = $(".body", section);
  if (!$(".result", box)) {
    box.replaceChildren(
      el(
        "p",
        { class: "outcome" },
        el("span", { class: "icon", attrs: { "aria-hidden": "true" } }),
        el("span", { class: "result" }),
        el("span", { class: "when" }),
      ),
      el("ul", { class: "problems" }),
      el("p", { class: "running" }),
      facts([
        ["Config generation", "generation"],
        ["Reloads ok", "ok-count"],
        ["Reloads failed", "failed-count"],
      ]),
    );
  }
  const reloads = config?.reloads ?? {};
  const last = reloads.last;
  const result = last ? (last.ok ? "ok" : "failed") : "none";
  const outcome = $(".outcome", box);
  setAttr(outcome, "data-state", { ok: "up", failed: "down", none: "unknown" }[result]);
  setText($(".icon", outcome), { ok: ICONS.up, failed: ICONS.down, none: "–" }[result]);
  setText($(".result", box), last ? result : "no reload since start");
  setText($(".when", box), last ? ` at ${whenAgo(last.at, status.now)}` : "");
  setAttr(section, "data-result", result);
  const problems = last && !last.ok ? (last.problems ?? []) : [];
  sync(
    $(".problems", box),
    problems.map((p, i) => [i, p]),
    ([i, p]) => `${i}:${p}`,
    "key",
    () => el("li"),
    (li, [, p]) => setText(li, p),
  );
  const running = config?.reload_in_progress;
  setText(
    $(".running", box),
    running ? `A reload is in progress for ${duration(running.for_s)}.` : "",
  );
  setText($(".generation", box), config?.generation ?? "–");
  setText($(".ok-count", box), reloads.ok ?? 0);
  setText($(".failed-count", box), reloads.failed ?? 0);
}

// The process: version, uptime, the reactor's lag.
function renderProcess(status, section) {
  const box = $(".body", section);
  if (!$(".uptime", box)) {
    box.replaceChildren(
      facts([
        ["Version", "version"],
        ["Uptime", "uptime"],
        ["Reactor lag", "lag"],
      ]),
    );
  }
  setText($(".version", box), status.version ?? "–");
  setText($(".uptime", box), duration(status.uptime_s));
  const lag = status.reactor_lag ?? {};
  const toMs = (s) => (typeof s === "number" ? `${(s * 1000).toFixed(1)} ms` : "–");
  setText(
    $(".lag", box),
    `${toMs(lag.last_minute_max_s)} in the last minute (${toMs(lag.max_s)} at most since start)`,
  );
}

// Cluster mode: the agreement, its problem, and what each observer sees of each target.
function renderCluster(status, section) {
  const cluster = status.cluster;
  const clustered = cluster?.mode && cluster.mode !== "standalone";
  section.hidden = !clustered;
  if (!clustered) {
    for (const node of section.querySelectorAll(".body, tbody, tfoot, thead tr"))
      node.replaceChildren();
    return;
  }
  renderClusterFacts(cluster, $(".body", section), status.now);
  const observers = cluster.observers ?? {};
  const targets = clusterTargets(cluster);
  const head = ["Observer", "Role", "Inventory", ...targets];
  sync(
    $("thead tr", section),
    head,
    (h) => h,
    "key",
    (h) => el("th", { text: h, attrs: { scope: "col" } }),
    () => {},
  );
  sync(
    $("tbody", section),
    Object.keys(observers).sort(),
    (n) => n,
    "observer",
    () => el("tr", { class: "observer" }),
    (row, name) => fillObserverRow(row, name, observers[name], targets),
  );
  sync(
    $("tfoot", section),
    cluster.agreed ? ["agreed"] : [],
    (k) => k,
    "key",
    () => el("tr", { class: "agreed" }),
    (row) => fillObserverRow(row, "agreed", { role: "majority", targets: cluster.agreed }, targets),
  );
}

function clusterTargets(cluster) {
  const names = new Set(Object.keys(cluster.agreed ?? {}));
  for (const seen of Object.values(cluster.observers ?? {})) {
    for (const name of Object.keys(seen.targets ?? {})) names.add(name);
  }
  return [...names].sort(byServiceThenName);
}

// Target names ("sip@chicago") in the services' order, then by name.
function byServiceThenName(a, b) {
  return orderOf(a.split("@")[0]) - orderOf(b.split("@")[0]) || a.localeCompare(b);
}

function renderClusterFacts(cluster, body, now) {
  if (!$(".agreement", body)) {
    body.replaceChildren(
      facts([
        ["This instance", "name"],
        ["Agreement", "agreement"],
        ["Since", "since"],
        ["Problem", "problem"],
        ["Inventories", "inventories"],
        ["Local overrides", "overrides"],
      ]),
    );
  }
  setParts($(".name", body), [srv(cluster.name ?? "–"), " (", srv(cluster.role ?? "?"), ")"]);
  const agreement = $(".agreement", body);
  const ok = AGREED.has(cluster.agreement);
  setParts(agreement, [`${ok ? "✓" : "⚠"} `, srv(cluster.agreement ?? "–")]);
  setAttr(agreement, "data-state", ok ? "up" : "down");
  setText($(".since", body), whenAgo(cluster.since, now));
  setText($(".problem", body), cluster.problem ?? "none");
  setText(
    $(".inventories", body),
    cluster.inventories_agree === false ? "⚠ differ between instances" : "agree",
  );
  const overrides = Object.entries(cluster.local_overrides ?? {}).flatMap(([s, site], i) => [
    ...(i ? [", "] : []),
    srvService(s),
    " at ",
    srv(site),
  ]);
  setParts($(".overrides", body), overrides.length ? overrides : ["none"]);
}

function fillObserverRow(row, name, seen, targets) {
  const cells = [
    name,
    seen.role ?? "",
    shortHash(seen.inventory),
    ...targets.map((t) => seen.targets?.[t]),
  ];
  sync(
    row,
    cells.map((c, i) => [i, c]),
    ([i]) => i,
    "col",
    ([i]) => (i === 0 ? el("th", { attrs: { scope: "row" } }) : el("td")),
    (cell, [i, value]) => {
      if (i < 3) setText(cell, value || "–");
      else if (!value) setText(cell, "–");
      else if (!$(".badge", cell)) cell.replaceChildren(stateBadge(value));
      else updateBadge($(".badge", cell), value);
    },
  );
}

const shortHash = (hash) =>
  typeof hash === "string" && hash.length > 12 ? `${hash.slice(0, 12)}…` : hash;

// ---- actions -----------------------------------------------------------------------------

function onServicesClick(event) {
  const button = event.target.closest("button.failover, button.failback");
  if (!button || session.busy) return;
  openConfirm({
    kind: button.classList.contains("failback") ? "failback" : "failover",
    service: button.dataset.service,
    site: button.dataset.site,
    force: false,
  });
}

// The confirmation: what happens to phones, and a warning when the site is not up.
function openConfirm(action) {
  const status = session.status;
  if (!status) return;
  pendingAction = action;
  const dialog = $("#confirm");
  const label = srvService(action.service);
  const site = srv(action.site);
  const verb = action.kind === "failover" ? "Switch " : "Fail back ";
  setParts($("#confirm-title", dialog), [verb, label, " to ", site, "?"]);
  setParts($(".message", dialog), phonesEffect(action, status));
  const state = status.monitor?.targets?.[`${action.service}@${action.site}`]?.state ?? "unknown";
  setParts(
    $(".warning", dialog),
    state === "up"
      ? []
      : [
          "⚠ ",
          label,
          " at ",
          site,
          " is ",
          srv(state),
          " right now: the server refuses unless you tick Force.",
        ],
  );
  $("#confirm-force").checked = Boolean(action.force);
  setText(
    $(".confirm", dialog),
    action.kind === "failover" ? "Confirm switch" : "Confirm fail back",
  );
  if (!dialog.open) dialog.showModal();
  $(".cancel", dialog).focus();
}

// What the move does to phones and to the automatic rule, in words for the operator (parts).
function phonesEffect(action, status) {
  const label = srvService(action.service);
  const site = srv(action.site);
  const cluster =
    status.cluster?.mode === "etcd"
      ? [" In cluster mode the choice applies to every instance."]
      : [];
  const info = status.monitor?.services?.[action.service];
  if (action.kind === "failback" && info?.active === action.site) {
    // only a manual pin to release: nothing moves
    return [
      label,
      " stays at ",
      site,
      "; the monitor decides again from now on (phones fetch nothing new).",
      ...cluster,
    ];
  }
  const rule =
    action.kind === "failover"
      ? [
          " This manual choice stays until you fail back: meanwhile the monitor does not move ",
          label,
          " by itself.",
        ]
      : [
          " ",
          label,
          " returns to its primary site ",
          site,
          " and is handed back to the automatic rule.",
        ];
  return [...effectOnPhones(action, status, label, site), ...rule, ...cluster];
}

// What phones (and, for the database, xprov) do after `action` moves the service.
function effectOnPhones(action, status, label, site) {
  if (action.service === "db") {
    const nothing = "No phone's file names the database: phones fetch nothing new.";
    const source = String(status.inventory?.source ?? "");
    if (source.startsWith("mysql"))
      return ["xprov reads its inventory from ", site, `'s database at once. ${nothing}`];
    if (source.startsWith("file:"))
      return [
        `${nothing} The inventory is read from a file: ` +
          "only the database the monitor reports as active changes.",
      ];
    return [nothing];
  }
  const phones = status.inventory?.phones;
  const count =
    typeof phones === "number" ? `${plural(phones, "phone")} of the inventory` : "The phones";
  const get = phones === 1 ? "gets" : "get";
  return [
    `${count} ${get} `,
    site,
    "'s ",
    label,
    " address on their next poll of their configuration file. " +
      "SPA phones reboot to apply a changed file; Yealink phones on current firmware apply it without a reboot.",
  ];
}

function closeConfirm() {
  const dialog = $("#confirm");
  if (dialog.open) dialog.close();
  forgetConfirm();
}

// A closed confirmation keeps nothing of the status (sites, phones) in the page.
function forgetConfirm() {
  pendingAction = null;
  for (const selector of ["#confirm-title", "#confirm .message", "#confirm .warning"]) {
    setText($(selector), "");
  }
}

async function onConfirm() {
  const action = pendingAction;
  if (!action) return;
  action.force = $("#confirm-force").checked;
  closeConfirm();
  await runAction(action);
}

// POST the action; its 200 answer is the new status, rendered at once.
async function runAction(action) {
  const label = srvService(action.service);
  const path = action.kind === "failover" ? "/failover" : "/failback";
  const body =
    action.kind === "failover"
      ? { service: action.service, site: action.site, force: action.force }
      : { service: action.service, force: action.force };
  const epoch = session.epoch;
  setBusy(true);
  showResult("pending", [
    `${action.kind === "failover" ? "Switching" : "Failing back"} `,
    label,
    " to ",
    srv(action.site),
    "…",
  ]);
  let answer = null;
  try {
    answer = await request(path, session.token, { method: "POST", body });
  } catch {
    answer = null;
  } finally {
    setBusy(false);
  }
  if (epoch !== session.epoch) return;
  showAnswer(action, answer);
}

function showAnswer(action, answer) {
  const label = srvService(action.service);
  if (!answer) {
    showResult("error", [
      "No answer from the server: ",
      label,
      " may or may not have moved; the services above show where it is.",
    ]);
    return;
  }
  const error = answer.body?.error
    ? srv(answer.body.error)
    : `the server answered ${answer.status}`;
  if (answer.status === 200) {
    if (isStatus(answer.body)) received(answer);
    const verb = action.kind === "failover" ? "switched" : "failed back";
    showResult("ok", [
      label,
      ` ${verb} to `,
      srv(action.site),
      `${action.force ? " (forced)" : ""}.`,
    ]);
  } else if (answer.status === 401) {
    signOut("The server no longer accepts this token.");
  } else if (answer.status === 409) {
    showResult("refused", ["Refused: ", error], action);
  } else {
    showResult("error", [`Failed (${answer.status}): `, error]);
  }
}

// The outcome of the last action (parts); a refusal offers to confirm again with force ticked.
function showResult(outcome, parts, refusedAction) {
  const box = $("#action-result");
  box.dataset.outcome = outcome;
  const text = el("span", { class: "text" });
  setParts(text, parts);
  const children = [
    el("span", { class: "icon", text: RESULT_ICONS[outcome], attrs: { "aria-hidden": "true" } }),
    text,
  ];
  if (refusedAction) {
    const again = refusedAction.kind === "failover" ? "Switch anyway" : "Fail back anyway";
    const retry = el("button", {
      class: "retry-force",
      text: `${again} (force)…`,
      attrs: { type: "button" },
    });
    retry.addEventListener("click", () => openConfirm({ ...refusedAction, force: true }));
    children.push(" ", retry);
  }
  box.replaceChildren(...children);
}

const RESULT_ICONS = { ok: "✓", refused: "⊘", error: "✗", pending: "…" };

function setBusy(busy) {
  session.busy = busy;
  for (const button of document.querySelectorAll(
    "#services button.failover, #services button.failback",
  )) {
    button.disabled = busy;
  }
}

// ---- start -------------------------------------------------------------------------------

// A token kept from earlier in this tab (a reload of the page): polling starts with it, and
// nothing of the status shows until the server accepts it (a 401 brings the form back).
function resume() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    showLogin("");
    return;
  }
  session.token = token;
  session.epoch += 1;
  $("#logout").hidden = false;
  const connection = $("#connection");
  connection.hidden = false;
  setAttr(connection, "data-state", "connecting");
  setText(connection, "Connecting…");
  poll(session.epoch);
}

function init() {
  $("#login").addEventListener("submit", onLogin);
  $("#logout").addEventListener("click", () => signOut(""));
  $("#services").addEventListener("click", onServicesClick);
  $("#confirm .confirm").addEventListener("click", onConfirm);
  $("#confirm .cancel").addEventListener("click", closeConfirm);
  $("#confirm").addEventListener("close", forgetConfirm); // Escape closes it too
  resume();
}

document.addEventListener("DOMContentLoaded", init);

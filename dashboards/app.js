// SPDX-License-Identifier: Apache-2.0
// The Watchpost NOC dashboard: login, a router on location.hash, the pages (Overview,
// Incidents, Telephony wall, Outbox) and the live event stream. Plain ES module, no build
// step, no external resources; the collector's CSP (default-src 'self') forbids inline
// scripts and styles, so every element is built with the DOM API and text goes through
// textContent only (nothing the API returns is ever parsed as HTML).
import { LANGS, t, getLang, setLang, loadLang, applyStatic } from "./i18n.js";

const $ = (sel) => document.querySelector(sel);

const state = {
  user: null, // {user, role, csrf}
  clockOffset: 0, // server now_ms - Date.now()
  es: null, // EventSource
  esRetry: null,
  live: false,
  page: null, // {name, cleanup}
  refreshTimer: null,
};

// for the end-to-end test and for curious operators: what the page has seen
window.wpDash = { sseHellos: 0, sseEvents: 0, renders: 0, lastEvent: null, ready: false };

// ---- small helpers ----

// h("div", {class: "x", onclick: f, dataset: {id: 1}}, child, "text", [children])
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) {
        continue;
      }
      if (k === "class") {
        el.className = v;
      } else if (k === "dataset") {
        Object.assign(el.dataset, v);
      } else if (k.startsWith("on")) {
        el.addEventListener(k.slice(2), v);
      } else if (k === "value") {
        el.value = v;
      } else {
        el.setAttribute(k, v === true ? "" : v);
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) {
      continue;
    }
    if (Array.isArray(c)) {
      append(el, c);
    } else if (c instanceof Node) {
      el.appendChild(c);
    } else {
      el.appendChild(document.createTextNode(String(c)));
    }
  }
}

function now() {
  return Date.now() + state.clockOffset;
}

function duration(s) {
  s = Math.max(0, Math.floor(s));
  if (s < 60) {
    return t("time.s", { n: s });
  }
  if (s < 3600) {
    return t("time.m", { n: Math.floor(s / 60) });
  }
  if (s < 86400) {
    return t("time.h", { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
  }
  return t("time.d", { d: Math.floor(s / 86400), h: Math.floor((s % 86400) / 3600) });
}

function ago(ms) {
  return t("time.ago", { t: duration((now() - ms) / 1000) });
}

// time left to a deadline (ms), as text and whether it is overdue
function left(deadlineMs) {
  if (!deadlineMs) {
    return { text: "—", overdue: false };
  }
  const s = (deadlineMs - now()) / 1000;
  if (s < 0) {
    return { text: t("inc.overdue", { t: duration(-s) }), overdue: true };
  }
  return { text: duration(s), overdue: false };
}

function fmtTime(ms) {
  if (!ms) {
    return "—";
  }
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(
    d.getMinutes()
  )}:${p(d.getSeconds())}`;
}

function readCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, v] = part.trim().split("=");
    if (k === name) {
      return v || "";
    }
  }
  return "";
}

function isOperator() {
  return state.user && (state.user.role === "operator" || state.user.role === "admin");
}

// ---- the API ----

class ApiError extends Error {
  constructor(status, msg) {
    super(msg);
    this.status = status;
  }
}

// fetch wrapper: JSON in and out, the CSRF token on every state-changing request, 401 -> login
async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET" && method !== "HEAD") {
    const csrf = (state.user && state.user.csrf) || readCookie("wp_csrf");
    if (csrf) {
      opts.headers["X-CSRF-Token"] = csrf;
    }
  }
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, e.message || "network error");
  }
  let data = null;
  try {
    data = await r.json();
  } catch (e) {
    data = null;
  }
  if (r.status === 401 && path !== "/api/v1/login") {
    showLogin();
    throw new ApiError(401, (data && data.error) || "not logged in");
  }
  if (!r.ok) {
    const err = new ApiError(r.status, (data && data.error) || r.statusText);
    err.retryAfter = r.headers.get("Retry-After");
    throw err;
  }
  if (data && typeof data.now_ms === "number") {
    state.clockOffset = data.now_ms - Date.now();
  }
  return data;
}

// ---- the event stream ----

function setLive(on) {
  state.live = on;
  const el = $("#live");
  el.dataset.i18n = on ? "live.on" : "live.off";
  el.textContent = t(el.dataset.i18n);
  el.className = "live " + (on ? "on" : "off");
}

function startEvents() {
  stopEvents();
  const es = new EventSource("/api/v1/events");
  state.es = es;
  es.addEventListener("hello", (ev) => {
    window.wpDash.sseHellos++;
    try {
      const d = JSON.parse(ev.data);
      if (typeof d.now_ms === "number") {
        state.clockOffset = d.now_ms - Date.now();
      }
    } catch (e) {
      // a hello without JSON is still a hello
    }
    setLive(true);
    // after a reconnect (collector restart) events may have been missed: reload
    if (window.wpDash.sseHellos > 1) {
      scheduleRefresh(0);
    }
  });
  // line state changes, coalesced by the collector to at most one event a second
  es.addEventListener("lines", (ev) => {
    window.wpDash.sseLines = (window.wpDash.sseLines || 0) + 1;
    let d = null;
    try {
      d = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    if (state.page && state.page.onLines) {
      state.page.onLines(d);
    }
  });
  es.addEventListener("incident", (ev) => {
    window.wpDash.sseEvents++;
    try {
      window.wpDash.lastEvent = JSON.parse(ev.data);
    } catch (e) {
      window.wpDash.lastEvent = null;
    }
    scheduleRefresh(100);
  });
  es.onerror = () => {
    setLive(false);
    // EventSource retries by itself (retry: 2000) while the collector is down; it gives up
    // for good on an HTTP error (401 after logout or session end, 503): then check the
    // session and start over.
    if (es.readyState === EventSource.CLOSED && state.es === es) {
      state.es = null;
      state.esRetry = setTimeout(async () => {
        state.esRetry = null;
        try {
          await api("GET", "/api/v1/session");
          startEvents();
        } catch (e) {
          if (e.status !== 401) {
            state.esRetry = setTimeout(startEvents, 5000);
          }
        }
      }, 2000);
    }
  };
}

function stopEvents() {
  if (state.es) {
    state.es.close();
    state.es = null;
  }
  if (state.esRetry) {
    clearTimeout(state.esRetry);
    state.esRetry = null;
  }
  setLive(false);
}

// reload the current page's data soon (events come in bursts)
function scheduleRefresh(delay) {
  if (state.refreshTimer) {
    return;
  }
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = null;
    if (state.page && state.page.refresh) {
      state.page.refresh();
    }
  }, delay);
}

// ---- login ----

function showLogin() {
  stopEvents();
  leavePage();
  state.user = null;
  $("#app").hidden = true;
  $("#login").hidden = false;
  fillLangSelect($("#login-lang"));
  $("#login-password").value = "";
  $("#login-user").focus();
}

async function onLogin(ev) {
  ev.preventDefault();
  const err = $("#login-error");
  err.textContent = "";
  const btn = $("#login-submit");
  btn.disabled = true;
  try {
    const d = await api("POST", "/api/v1/login", {
      user: $("#login-user").value.trim(),
      password: $("#login-password").value,
    });
    $("#login-password").value = "";
    startApp({ user: d.user, role: d.role, csrf: d.csrf });
  } catch (e) {
    if (e.status === 401) {
      err.textContent = t("login.failed");
    } else if (e.status === 429) {
      err.textContent = t("login.limited", { s: e.retryAfter || "60" });
    } else {
      err.textContent = t("login.error", { code: e.status || e.message });
    }
  } finally {
    btn.disabled = false;
  }
}

async function onLogout() {
  stopEvents(); // before the session ends, so the stream does not retry into a 401
  try {
    await api("POST", "/api/v1/logout");
  } catch (e) {
    // the session may be gone already
  }
  showLogin();
}

function fillLangSelect(sel) {
  sel.replaceChildren();
  for (const [code, name] of Object.entries(LANGS)) {
    sel.appendChild(h("option", { value: code, selected: code === getLang() }, name));
  }
  sel.value = getLang();
}

function onLangChange(ev) {
  setLang(ev.target.value, state.user ? state.user.user : null);
  fillLangSelect($("#lang"));
  fillLangSelect($("#login-lang"));
  renderWho();
  setLive(state.live);
  if (state.page && state.page.render) {
    state.page.render();
  }
}

function renderWho() {
  if (state.user) {
    $("#who").textContent = `${state.user.user} (${t("role." + state.user.role)})`;
  }
}

function startApp(user) {
  state.user = user;
  loadLang(user.user);
  $("#login").hidden = true;
  $("#app").hidden = false;
  document.body.dataset.role = user.role;
  fillLangSelect($("#lang"));
  renderWho();
  startEvents();
  route();
}

// ---- router ----

const pages = {};

function leavePage() {
  if (state.page && state.page.cleanup) {
    state.page.cleanup();
  }
  state.page = null;
}

function route() {
  if (!state.user) {
    return;
  }
  const parts = (location.hash || "#/overview").replace(/^#\/?/, "").split("/");
  const name = pages[parts[0]] ? parts[0] : "overview";
  leavePage();
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.page === name);
  }
  const root = $("#page");
  root.replaceChildren(h("p", { class: "muted", id: "page-loading" }, t("loading")));
  root.dataset.page = name;
  state.page = pages[name](root, parts.slice(1));
}

// A page that loads data with load() and draws it with draw(root, data); refresh() reloads,
// render() redraws (language change), a ticker redraws time-dependent text every second.
function dataPage(root, load, draw, opts = {}) {
  let data = null;
  let error = null;
  let alive = true;
  let loading = false;
  let again = false;
  const page = {
    async refresh() {
      if (loading) {
        again = true;
        return;
      }
      loading = true;
      try {
        data = await load();
        error = null;
      } catch (e) {
        if (e.status === 401) {
          return;
        }
        error = e;
      } finally {
        loading = false;
      }
      if (alive) {
        page.render();
      }
      if (again) {
        again = false;
        page.refresh();
      }
    },
    render() {
      if (!alive) {
        return;
      }
      if (error && !data) {
        root.replaceChildren(h("p", { class: "error" }, t("err.load", { err: error.message })));
        return;
      }
      if (data) {
        const focused = document.activeElement && document.activeElement.id;
        draw(root, data, page);
        window.wpDash.renders++;
        if (focused && document.getElementById(focused)) {
          document.getElementById(focused).focus();
        }
      }
    },
    // change the loaded data in place (an event) and redraw
    patch(fn) {
      if (data && alive) {
        fn(data);
        page.render();
      }
    },
    cleanup() {
      alive = false;
      clearInterval(tick);
      clearInterval(poll);
    },
  };
  const tick = setInterval(() => {
    if (data && opts.tick) {
      opts.tick(root, data);
    }
  }, 1000);
  // things the event stream does not carry yet (agents connecting, line states) are polled
  let polls = 0;
  const poll = setInterval(() => {
    polls++;
    if (!opts.pollIf || opts.pollIf(polls)) {
      page.refresh();
    }
  }, opts.pollMs || 10000);
  page.refresh();
  return page;
}

// elements with data-deadline / data-since get their text redrawn every second
function tickTimes(root) {
  for (const el of root.querySelectorAll("[data-deadline]")) {
    const l = left(Number(el.dataset.deadline));
    el.textContent = l.text;
    el.classList.toggle("overdue", l.overdue);
  }
  for (const el of root.querySelectorAll("[data-since]")) {
    el.textContent = duration((now() - Number(el.dataset.since)) / 1000);
  }
  for (const el of root.querySelectorAll("[data-ago]")) {
    el.textContent = t("ov.last_seen", { ago: ago(Number(el.dataset.ago)) });
  }
}

function deadlineEl(ms, cls) {
  const l = left(ms);
  return h(
    "span",
    { class: (cls || "") + (l.overdue ? " overdue" : ""), dataset: ms ? { deadline: ms } : null },
    l.text
  );
}

function prioBadge(p) {
  return h("span", { class: `prio p${p}` }, t("prio." + p));
}

function statusBadge(s) {
  return h("span", { class: `status st-${s}` }, t("status." + s));
}

const PROBLEM_STATES = new Set(["blocked", "unavailable", "out_of_service"]);
const LINE_STATES = [
  "idle",
  "ringing",
  "in_use",
  "on_hold",
  "busy",
  "unavailable",
  "out_of_service",
  "blocked",
  "unknown",
];

// a timeline entry's kind in the page's language (unknown kinds as the collector wrote them)
function tlKind(k) {
  const v = t("tl." + k);
  return v === "tl." + k ? k : v;
}

function lineLabel(s) {
  const k = "line." + s;
  const v = t(k);
  return v === k ? s : v;
}

// ---- Overview ----

// The line summary follows the stream's "lines" events; hosts are polled (every 5 s).
pages.overview = (root) => {
  const page = dataPage(
    root,
    async () => {
      const [hosts, inc, lines] = await Promise.all([
        api("GET", "/api/v1/hosts"),
        api("GET", "/api/v1/incidents?status=active"),
        api("GET", "/api/v1/lines"),
      ]);
      return { hosts: hosts.hosts, incidents: inc.incidents, lines: lines.lines };
    },
    drawOverview,
    { tick: tickTimes, pollMs: 5000 }
  );
  page.onLines = (ev) => mergeLines(page, ev);
  return page;
};

function drawOverview(root, d) {
  // incidents by priority, nearest deadline of each
  const byPrio = { 1: [], 2: [], 3: [], 4: [] };
  for (const i of d.incidents) {
    (byPrio[i.priority] || byPrio[4]).push(i);
  }
  const prioCards = [1, 2, 3, 4].map((p) => {
    const list = byPrio[p];
    const dls = list.map((i) => i.deadline_ms).filter((x) => x);
    const next = dls.length ? Math.min(...dls) : 0;
    return h(
      "div",
      { class: `count-card p${p}` + (list.length ? " has" : ""), dataset: { prio: p } },
      h("div", { class: "count-label" }, t("prio." + p)),
      h("div", { class: "count-num" }, String(list.length)),
      h(
        "div",
        { class: "count-sub" },
        next ? [t("ov.next_deadline") + " ", deadlineEl(next)] : "\u00a0"
      )
    );
  });

  // host tiles: worst open incident, else silent when disconnected, else OK
  const hosts = [...d.hosts].sort(
    (a, b) =>
      (a.worst_priority || 9) - (b.worst_priority || 9) ||
      Number(a.connected) - Number(b.connected) ||
      a.id.localeCompare(b.id)
  );
  const tiles = hosts.map((x) => {
    const cls = x.worst_priority
      ? `p${x.worst_priority}`
      : x.connected
      ? "ok"
      : "silent";
    const n = x.open_incidents ? x.open_incidents.total : 0;
    return h(
      "a",
      {
        class: `tile ${cls}`,
        href: `#/host/${encodeURIComponent(x.id)}`,
        dataset: { host: x.id, state: cls },
        title: x.host,
      },
      h("div", { class: "tile-name" }, x.id),
      h("div", { class: "tile-host" }, x.host && x.host !== x.id ? x.host : "\u00a0"),
      h(
        "div",
        { class: "tile-state" },
        n ? t("ov.open_n", { n }) : x.connected ? t("ov.ok") : t("ov.silent")
      ),
      x.connected
        ? null
        : h("div", { class: "tile-seen", dataset: { ago: x.last_seen_ms } }, t("ov.last_seen", { ago: ago(x.last_seen_ms) }))
    );
  });

  // line summary
  const counts = {};
  for (const l of d.lines) {
    counts[l.state] = (counts[l.state] || 0) + 1;
  }
  const states = LINE_STATES.filter((s) => counts[s]).concat(
    Object.keys(counts).filter((s) => !LINE_STATES.includes(s))
  );
  const lineCards = states.map((s) =>
    h(
      "div",
      { class: `line-count ls-${s}` + (PROBLEM_STATES.has(s) ? " problem" : ""), dataset: { state: s } },
      h("span", { class: "num" }, String(counts[s])),
      h("span", { class: "lbl" }, lineLabel(s))
    )
  );

  const down = d.hosts.filter((x) => !x.connected);
  const recent = d.incidents.slice(0, 8).map((i) =>
    h(
      "a",
      { class: `inc-row p${i.priority}`, href: `#/incidents/${i.id}`, dataset: { incidentId: i.id } },
      prioBadge(i.priority),
      statusBadge(i.status),
      h("span", { class: "inc-host" }, i.host),
      h("span", { class: "inc-sum" }, i.summary),
      deadlineEl(i.deadline_ms, "inc-left")
    )
  );

  root.replaceChildren(
    h(
      "div",
      { class: "overview" },
      h(
        "section",
        { class: "panel hosts-panel" },
        h("h2", null, t("ov.hosts"), h("span", { class: "muted" }, ` ${d.hosts.length}`)),
        tiles.length ? h("div", { class: "tiles" }, tiles) : h("p", { class: "muted" }, t("ov.no_hosts"))
      ),
      h(
        "aside",
        { class: "side" },
        h("section", { class: "panel" }, h("h2", null, t("ov.incidents")), h("div", { class: "counts" }, prioCards)),
        h(
          "section",
          { class: "panel" },
          h("h2", null, t("ov.recent")),
          recent.length ? h("div", { class: "inc-list", id: "ov-incidents" }, recent) : h("p", { class: "muted" }, t("ov.no_incidents"))
        ),
        h(
          "section",
          { class: "panel" },
          h("h2", null, h("a", { href: "#/telephony" }, t("ov.lines")), h("span", { class: "muted" }, ` ${d.lines.length}`)),
          lineCards.length ? h("div", { class: "line-counts" }, lineCards) : h("p", { class: "muted" }, t("ov.no_lines"))
        ),
        h(
          "section",
          { class: "panel" + (down.length ? " alert" : "") },
          h("h2", null, t("ov.disconnected"), h("span", { class: "big-num", id: "ov-down" }, ` ${down.length}`)),
          down.length
            ? h("ul", { class: "down-list" }, down.map((x) => h("li", null, x.id, " ", h("span", { class: "muted", dataset: { ago: x.last_seen_ms } }, t("ov.last_seen", { ago: ago(x.last_seen_ms) })))))
            : h("p", { class: "muted" }, t("ov.none_disconnected"))
        )
      )
    )
  );
}

// ---- Incidents ----

const incFilter = { status: "active", priority: "", q: "" };

pages.incidents = (root, args) => {
  if (args[0]) {
    return incidentDetail(root, args[0]);
  }
  return dataPage(
    root,
    async () => {
      const q = new URLSearchParams({ status: incFilter.status, limit: "1000" });
      if (incFilter.priority) {
        q.set("priority", incFilter.priority);
      }
      return api("GET", "/api/v1/incidents?" + q.toString());
    },
    drawIncidents,
    { tick: tickTimes, pollMs: 15000 }
  );
};

function drawIncidents(root, d, page) {
  const q = incFilter.q.trim().toLowerCase();
  const list = d.incidents.filter(
    (i) => !q || i.host.toLowerCase().includes(q) || i.summary.toLowerCase().includes(q) || String(i.id) === q
  );
  const statusSel = h(
    "select",
    {
      id: "f-status",
      onchange: (e) => {
        incFilter.status = e.target.value;
        page.refresh();
      },
    },
    ["active", "open", "acknowledged", "resolved", "closed", "all"].map((s) =>
      h("option", { value: s, selected: s === incFilter.status }, t("status." + s))
    )
  );
  const prioSel = h(
    "select",
    {
      id: "f-priority",
      onchange: (e) => {
        incFilter.priority = e.target.value;
        page.refresh();
      },
    },
    h("option", { value: "" }, t("inc.filter.any")),
    [1, 2, 3, 4].map((p) => h("option", { value: String(p), selected: String(p) === incFilter.priority }, t("prio." + p)))
  );
  const search = h("input", {
    id: "f-search",
    type: "search",
    value: incFilter.q,
    placeholder: t("inc.filter.search"),
    oninput: (e) => {
      incFilter.q = e.target.value;
      page.render();
    },
  });
  const rows = list.map((i) =>
    h(
      "tr",
      {
        class: `p${i.priority} st-${i.status}`,
        dataset: { incidentId: i.id },
        onclick: () => (location.hash = `#/incidents/${i.id}`),
      },
      h("td", null, h("a", { href: `#/incidents/${i.id}` }, String(i.id))),
      h("td", null, prioBadge(i.priority)),
      h("td", null, statusBadge(i.status)),
      h("td", null, i.host),
      h("td", { class: "sum" }, i.summary, i.flapping ? h("span", { class: "tag" }, t("inc.flapping")) : null),
      h("td", null, fmtTime(i.opened_ms)),
      h("td", null, i.deadline_ms ? deadlineEl(i.deadline_ms) : "—"),
      h("td", null, i.acked_by || "")
    )
  );
  const searchHadFocus = document.activeElement && document.activeElement.id === "f-search";
  root.replaceChildren(
    h(
      "section",
      { class: "panel" },
      h(
        "div",
        { class: "filters" },
        h("label", null, t("inc.filter.status"), " ", statusSel),
        h("label", null, t("inc.filter.priority"), " ", prioSel),
        search
      ),
      rows.length
        ? h(
            "table",
            { class: "grid incidents" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                ["id", "priority", "status", "host", "summary", "opened", "left", "acked_by"].map((c) =>
                  h("th", null, t("inc.col." + c))
                )
              )
            ),
            h("tbody", null, rows)
          )
        : h("p", { class: "muted" }, t("inc.empty"))
    )
  );
  if (searchHadFocus) {
    search.focus();
    search.setSelectionRange(search.value.length, search.value.length);
  }
}

function incidentDetail(root, id) {
  const msg = { text: "", error: false };
  return dataPage(
    root,
    () => api("GET", `/api/v1/incidents/${encodeURIComponent(id)}`),
    (root, i, page) => drawIncident(root, i, page, msg),
    { tick: tickTimes, pollMs: 15000 }
  );
}

function drawIncident(root, i, page, msg) {
  const kv = (k, v) => [h("dt", null, t(k)), h("dd", null, v)];
  const values = Object.entries(i.values || {});
  const note = h("textarea", { id: "inc-note", rows: "2", maxlength: "4096", placeholder: t("inc.note") });
  const act = (what, needsNote) => async () => {
    const text = note.value.trim();
    if (needsNote && !text) {
      msg.text = t("inc.note_needed");
      msg.error = true;
      page.render();
      return;
    }
    try {
      await api("POST", `/api/v1/incidents/${i.id}/${what}`, text ? { note: text } : undefined);
      msg.text = t("inc.done");
      msg.error = false;
      note.value = "";
    } catch (e) {
      msg.text = t("inc.failed", { err: e.message });
      msg.error = true;
    }
    page.refresh();
  };
  const active = i.status === "open" || i.status === "acknowledged";
  let actions;
  if (isOperator()) {
    actions = h(
      "section",
      { class: "panel actions" },
      h("h2", null, t("inc.actions")),
      note,
      h(
        "div",
        { class: "buttons" },
        i.status === "open" ? h("button", { type: "button", dataset: { action: "ack" }, onclick: act("ack", false) }, t("inc.ack")) : null,
        active ? h("button", { type: "button", dataset: { action: "resolve" }, onclick: act("resolve", true) }, t("inc.resolve")) : null,
        h("button", { type: "button", class: "quiet", dataset: { action: "comment" }, onclick: act("comment", true) }, t("inc.comment"))
      ),
      msg.text ? h("p", { class: msg.error ? "error" : "ok-msg", id: "inc-msg" }, msg.text) : null
    );
  } else {
    actions = h("section", { class: "panel actions" }, h("p", { class: "muted", id: "viewer-note" }, t("inc.viewer_only")));
  }
  root.replaceChildren(
    h("p", null, h("a", { href: "#/incidents", class: "back" }, t("inc.back"))),
    h(
      "div",
      { class: "detail", dataset: { incidentId: i.id, status: i.status } },
      h(
        "section",
        { class: `panel head p${i.priority}` },
        h("h1", null, prioBadge(i.priority), " ", statusBadge(i.status), " ", t("inc.detail", { id: i.id })),
        h("p", { class: "summary" }, i.summary),
        h(
          "dl",
          { class: "kv" },
          kv("inc.col.host", i.host),
          kv("inc.rule", i.rule),
          kv("inc.category", i.category),
          kv("inc.impact_urgency", `${i.impact} / ${i.urgency}`),
          kv("inc.col.opened", fmtTime(i.opened_ms)),
          kv("inc.response_due", fmtTime(i.response_due_ms)),
          kv("inc.resolve_due", fmtTime(i.resolve_due_ms)),
          kv("inc.col.left", i.deadline_ms ? deadlineEl(i.deadline_ms) : "—"),
          kv("inc.col.acked_by", i.acked_by ? `${i.acked_by} · ${fmtTime(i.acked_ms)}` : "—"),
          kv("inc.escalation", String(i.escalation)),
          i.reopened ? kv("inc.col.status", t("inc.reopened", { n: i.reopened })) : null
        ),
        i.description ? [h("h2", null, t("inc.description")), h("p", { class: "pre" }, i.description)] : null
      ),
      actions,
      h(
        "section",
        { class: "panel" },
        h("h2", null, t("inc.values")),
        values.length
          ? h(
              "table",
              { class: "grid values" },
              h("tbody", null, values.map(([k, v]) => h("tr", null, h("th", null, k), h("td", null, typeof v === "object" ? JSON.stringify(v) : String(v)))))
            )
          : h("p", { class: "muted" }, t("inc.no_values"))
      ),
      h(
        "section",
        { class: "panel" },
        h("h2", null, t("inc.runbook")),
        i.runbook ? h("pre", { class: "runbook" }, i.runbook) : h("p", { class: "muted" }, t("inc.no_runbook"))
      ),
      h(
        "section",
        { class: "panel" },
        h("h2", null, t("inc.timeline")),
        h(
          "ol",
          { class: "timeline" },
          (i.timeline || []).map((e) =>
            h(
              "li",
              { class: "tl-" + e.kind.replace(/[^a-z]/g, "_") },
              h("span", { class: "tl-at" }, fmtTime(e.at_ms)),
              h("span", { class: "tl-kind", title: e.kind }, tlKind(e.kind)),
              h("span", { class: "tl-by" }, e.by),
              h("span", { class: "tl-text" }, e.text)
            )
          )
        )
      )
    )
  );
}

// ---- Host page (#/host/NAME): latest values, graphs, its incidents ----

const RANGES = ["1h", "24h", "7d", "30d", "1y"];
const hostView = { range: "24h" };
const MAX_GRAPHS = 24;

const LOG_ROWS = 50; // recent log events on the Host page

pages.host = (root, args) => {
  const name = decodeURIComponent(args[0] || "");
  const q = encodeURIComponent(name);
  // its checks and log events beside the host (the API takes the agent id as host=); a
  // failure there leaves those sections empty, not the page
  const load = async () => {
    const [d, checks, logs] = await Promise.all([
      api("GET", `/api/v1/hosts/${q}`),
      api("GET", `/api/v1/checks?host=${q}`).catch(() => null),
      api("GET", `/api/v1/logevents?host=${q}&limit=${LOG_ROWS}`).catch(() => null),
    ]);
    d.checks = checks ? checks.checks : null;
    d.logevents = logs ? logs.events : null;
    return d;
  };
  return dataPage(root, load, drawHost, {
    tick: tickTimes,
    pollMs: 60000, // the graphs are redrawn (and re-fetched) at most once a minute
  });
};

function fmtNum(v) {
  if (v === null || v === undefined) {
    return "—";
  }
  if (Math.abs(v) >= 1e9 && Number.isInteger(v)) {
    return String(v);
  }
  return v.toLocaleString(undefined, { maximumFractionDigits: 3 });
}

// One graph per group when it has one instance (all its fields on it), else one per field
// with every instance on it (the API draws at most 16 series and 8 metrics per graph).
function hostGraphs(series) {
  const groups = new Map();
  for (const s of series) {
    if (!s.updated_ms) {
      continue; // nothing stored yet: no RRD file to draw
    }
    if (!groups.has(s.group)) {
      groups.set(s.group, []);
    }
    groups.get(s.group).push(s);
  }
  const out = [];
  for (const [g, list] of groups) {
    const fields = Object.keys(list[0].values || {});
    if (list.length === 1) {
      for (let i = 0; i < fields.length; i += 8) {
        out.push({ metrics: fields.slice(i, i + 8).map((f) => `${g}.${f}`), instances: [list[0].instance] });
      }
    } else {
      for (const f of fields) {
        for (let i = 0; i < list.length; i += 16) {
          const insts = list.slice(i, i + 16).map((x) => x.instance);
          out.push({ metrics: [`${g}.${f}`], instances: list.length <= 16 ? [null] : insts });
        }
      }
    }
  }
  return out;
}

function graphUrl(host, gr, inst) {
  const q = new URLSearchParams({ host });
  for (const m of gr.metrics) {
    q.append("metric", m);
  }
  if (inst) {
    q.set("instance", inst);
  }
  q.set("range", hostView.range);
  q.set("width", "560");
  q.set("height", "140");
  q.set("theme", "dark");
  return `/api/v1/graph?${q}`;
}

function fmtBytes(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) {
    return "—";
  }
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toLocaleString(undefined, { maximumFractionDigits: i ? 1 : 0 })} ${units[i]}`;
}

const CHECK_STATES = ["ok", "warning", "critical", "unknown"];

// Processes (the "proc" series: instance = the process name), checks and recent log events
function hostExtraSections(d) {
  const procs = d.series
    .filter((s) => s.group === "proc")
    .sort((a, b) => String(a.instance).localeCompare(String(b.instance)))
    .map((s) => {
      const v = s.values || {};
      return h(
        "tr",
        { dataset: { proc: s.instance } },
        h("td", null, s.instance || "—"),
        h("td", { class: "num" + (v.count === 0 ? " bad" : "") }, fmtNum(v.count)),
        h("td", { class: "num" }, v.cpu_pct === null || v.cpu_pct === undefined ? "—" : `${fmtNum(v.cpu_pct)} %`),
        h("td", { class: "num" }, fmtBytes(v.rss_bytes)),
        h("td", null, fmtTime(s.updated_ms))
      );
    });
  const checks = (d.checks || [])
    .slice()
    .sort((a, b) => b.status - a.status || a.name.localeCompare(b.name))
    .map((c) => {
      const st = CHECK_STATES[c.status] || "unknown";
      return h(
        "tr",
        { class: `chk-${st}`, dataset: { check: c.name, status: st } },
        h("td", null, h("span", { class: `chk chk-${st}` }, t("chk." + st))),
        h("td", null, c.name),
        h("td", { class: "chk-out" }, c.output),
        h("td", { class: "num", dataset: { since: c.since_ms }, title: fmtTime(c.since_ms) }, duration((now() - c.since_ms) / 1000)),
        h("td", null, fmtTime(c.ts_ms))
      );
    });
  const logs = (d.logevents || []).map((e) => {
    const sev = Math.min(Math.max(e.severity | 0, 0), 3);
    return h(
      "tr",
      { class: `sev-${sev}`, dataset: { logevent: e.id } },
      h("td", null, fmtTime(e.ts_ms)),
      h("td", null, h("span", { class: `sev sev-${sev}` }, t("sev." + sev))),
      h("td", null, e.rule, h("div", { class: "muted small" }, e.source)),
      h("td", { class: "log-text" }, e.text)
    );
  });
  const table = (cls, cols, rows) =>
    h("table", { class: `grid ${cls}` }, h("thead", null, h("tr", null, cols.map((c) => h("th", null, t(c))))), h("tbody", null, rows));
  return [
    h(
      "section",
      { class: "panel host-checks" },
      h("h2", null, t("host.checks")),
      checks.length
        ? table("checks", ["host.col.status", "host.col.check", "host.col.output", "host.col.since", "host.col.updated"], checks)
        : h("p", { class: "muted" }, t(d.checks ? "host.no_checks" : "host.no_store"))
    ),
    h(
      "section",
      { class: "panel host-procs" },
      h("h2", null, t("host.procs")),
      procs.length
        ? table("latest procs", ["host.col.process", "host.col.count", "host.col.cpu", "host.col.mem", "host.col.updated"], procs)
        : h("p", { class: "muted" }, t("host.no_procs"))
    ),
    h(
      "section",
      { class: "panel host-logs" },
      h("h2", null, t("host.logs", { n: LOG_ROWS })),
      logs.length
        ? table("logevents", ["host.col.time", "host.col.severity", "host.col.rule", "host.col.text"], logs)
        : h("p", { class: "muted" }, t(d.logevents ? "host.no_logs" : "host.no_store"))
    ),
  ];
}

function drawHost(root, d, page) {
  const kv = (k, v) => [h("dt", null, t(k)), h("dd", null, v)];
  const rows = [];
  for (const s of d.series) {
    for (const [f, v] of Object.entries(s.values || {})) {
      rows.push(
        h(
          "tr",
          { dataset: { metric: `${s.group}.${f}`, instance: s.instance } },
          h("td", null, s.group),
          h("td", null, s.instance || "—"),
          h("td", null, f),
          h("td", { class: "num" }, fmtNum(v)),
          h("td", null, fmtTime(s.updated_ms))
        )
      );
    }
  }
  // graphs: for a group with many instances beyond 16, one graph per instance
  const imgs = [];
  for (const gr of hostGraphs(d.series)) {
    for (const inst of gr.instances) {
      if (imgs.length >= MAX_GRAPHS) {
        break;
      }
      const label = gr.metrics.join(", ") + (inst ? ` ${inst}` : "");
      imgs.push(
        h(
          "figure",
          { class: "graph" },
          h("img", {
            src: graphUrl(d.id, gr, inst),
            alt: t("host.graph_alt", { metric: label }),
            dataset: { metric: gr.metrics.join(",") },
          })
        )
      );
    }
  }
  const total = hostGraphs(d.series).reduce((n, g) => n + g.instances.length, 0);
  const ranges = h(
    "div",
    { class: "buttons ranges", role: "group", "aria-label": t("host.range") },
    RANGES.map((r) =>
      h(
        "button",
        {
          type: "button",
          class: r === hostView.range ? "active" : "quiet",
          "aria-pressed": r === hostView.range ? "true" : "false",
          dataset: { range: r },
          onclick: () => {
            hostView.range = r;
            page.render();
          },
        },
        r
      )
    )
  );
  const incs = d.incidents.map((i) =>
    h(
      "a",
      { class: `inc-row p${i.priority}`, href: `#/incidents/${i.id}`, dataset: { incidentId: i.id } },
      prioBadge(i.priority),
      statusBadge(i.status),
      h("span", { class: "inc-host" }, i.rule),
      h("span", { class: "inc-sum" }, i.summary),
      deadlineEl(i.deadline_ms, "inc-left")
    )
  );
  root.replaceChildren(
    h("p", null, h("a", { href: "#/overview", class: "back" }, t("host.back"))),
    h(
      "section",
      { class: "panel host-head", dataset: { host: d.id } },
      h("h1", null, t("host.title", { name: d.id }), " ",
        h("span", { class: d.connected ? "tag ok" : "tag silent" }, t(d.connected ? "host.connected" : "host.disconnected"))),
      h(
        "dl",
        { class: "kv" },
        kv("inc.col.host", d.host || d.id),
        kv("host.version", d.version || "—"),
        kv("host.addr", d.addr || "—"),
        kv("host.last_seen", fmtTime(d.last_seen_ms))
      )
    ),
    h(
      "section",
      { class: "panel host-incidents" },
      h("h2", null, t("host.incidents")),
      incs.length ? h("div", { class: "inc-list" }, incs) : h("p", { class: "muted" }, t("host.no_incidents"))
    ),
    ...hostExtraSections(d),
    h(
      "section",
      { class: "panel host-graphs" },
      h("h2", null, t("host.graphs")),
      ranges,
      imgs.length ? h("div", { class: "graphs" }, imgs) : h("p", { class: "muted" }, t("host.no_series")),
      total > imgs.length ? h("p", { class: "muted" }, t("host.graphs_capped", { n: imgs.length })) : null
    ),
    h(
      "section",
      { class: "panel host-latest" },
      h("h2", null, t("host.latest")),
      rows.length
        ? h(
            "table",
            { class: "grid latest" },
            h("thead", null, h("tr", null, ["group", "instance", "field", "value", "updated"].map((c) => h("th", null, t("host.col." + c))))),
            h("tbody", null, rows)
          )
        : h("p", { class: "muted" }, t("host.no_series"))
    )
  );
}

// ---- Telephony wall ----

const telFilter = { host: "" };

// Line changes come on the event stream ("lines", at most one a second); the wall polls
// every 3 s only while the stream is down, else every 30 s (seats, missed events).
pages.telephony = (root) => {
  const load = async () => {
    const [lines, seats] = await Promise.all([
      api("GET", "/api/v1/lines?limit=10000"),
      api("GET", "/api/v1/seats?since_s=86400&limit=10000").catch(() => ({ seats: [] })),
    ]);
    return { lines: lines.lines, seats: seats.seats };
  };
  const page = dataPage(root, load, drawTelephony, {
    tick: tickTimes,
    pollMs: 3000,
    pollIf: (n) => !state.live || n % 10 === 0,
  });
  page.onLines = (ev) => mergeLines(page, ev);
  return page;
};

// A "lines" event of the stream into a page whose data has lines (the Telephony wall, the
// Overview's line summary): the changed lines replace or join the loaded ones; overflow
// (too many changes for one event) reloads.
function mergeLines(page, ev) {
  if (ev.overflow) {
    page.refresh();
    return;
  }
  page.patch((d) => {
    const at = new Map(d.lines.map((l, i) => [`${l.agent}\u0000${l.object}`, i]));
    let added = false;
    for (const l of ev.lines || []) {
      const i = at.get(`${l.agent}\u0000${l.object}`);
      if (i === undefined) {
        d.lines.push(l);
        added = true;
      } else {
        d.lines[i] = l;
      }
    }
    if (added) {
      // the API's order: host, group, object
      d.lines.sort((a, b) => a.host.localeCompare(b.host) || a.group.localeCompare(b.group) || a.object.localeCompare(b.object));
    }
  });
}

// the seat state of each line: a seat matches a line of its host by its device (the line's
// object, "PJSIP/1001", sent by the ami probe); a session stored without one (an older
// agent) matches when the names are equal or their last "/" parts are ("PJSIP/1001" and
// "1001"); logged in, paused, or logged out (a session in the last day, none open)
function seatStates(seats) {
  const tail = (s) => String(s).slice(String(s).lastIndexOf("/") + 1);
  const byDev = new Map();
  const guess = new Map();
  const rank = { out: 0, in: 1, paused: 2 };
  const put = (m, k, st) => {
    const cur = m.get(k);
    // an open session wins over a closed one; paused in one queue shows paused
    if (!cur || rank[st] > rank[cur]) {
      m.set(k, st);
    }
  };
  for (const s of seats || []) {
    const st = s.logout_ms ? "out" : s.paused ? "paused" : "in";
    if (s.device) {
      put(byDev, `${s.host}\u0000${s.device}`, st);
      continue;
    }
    for (const k of new Set([`${s.host}\u0000${s.seat}`, `${s.host}\u0000${tail(s.seat)}`])) {
      put(guess, k, st);
    }
  }
  return (l) =>
    byDev.get(`${l.host}\u0000${l.object}`) ||
    guess.get(`${l.host}\u0000${l.object}`) ||
    guess.get(`${l.host}\u0000${tail(l.object)}`) ||
    null;
}

function drawTelephony(root, d) {
  const seatOf = seatStates(d.seats);
  const hosts = [...new Set(d.lines.map((l) => l.host))].sort();
  const lines = d.lines.filter((l) => !telFilter.host || l.host === telFilter.host);
  const counts = {};
  let problems = 0;
  for (const l of lines) {
    counts[l.state] = (counts[l.state] || 0) + 1;
    if (PROBLEM_STATES.has(l.state)) {
      problems++;
    }
  }
  // grouped by host (site) and group (skill / hunt group), API order within
  const groups = new Map();
  for (const l of lines) {
    const k = `${l.host}\u0000${l.group}`;
    if (!groups.has(k)) {
      groups.set(k, { host: l.host, group: l.group, lines: [] });
    }
    groups.get(k).lines.push(l);
  }
  const hostSel = h(
    "select",
    {
      id: "tel-host",
      onchange: (e) => {
        telFilter.host = e.target.value;
        drawTelephony(root, d);
      },
    },
    h("option", { value: "" }, t("tel.filter.all")),
    hosts.map((x) => h("option", { value: x, selected: x === telFilter.host }, x))
  );
  root.replaceChildren(
    h(
      "section",
      { class: "panel" },
      h(
        "div",
        { class: "filters" },
        h("label", null, t("tel.filter.host"), " ", hostSel),
        h(
          "div",
          { class: "line-counts inline" },
          Object.keys(counts)
            .sort((a, b) => LINE_STATES.indexOf(a) - LINE_STATES.indexOf(b))
            .map((s) =>
              h("div", { class: `line-count ls-${s}` + (PROBLEM_STATES.has(s) ? " problem" : "") }, h("span", { class: "num" }, String(counts[s])), h("span", { class: "lbl" }, lineLabel(s)))
            )
        ),
        problems ? h("span", { class: "problem-note" }, t("tel.problems", { n: problems })) : null
      )
    ),
    ...(lines.length
      ? [...groups.values()].map((g) =>
          h(
            "section",
            { class: "panel line-group" },
            h("h2", null, g.host, g.group ? h("span", { class: "muted" }, ` · ${g.group}`) : null),
            h(
              "div",
              { class: "cells" },
              g.lines.map((l) =>
                h(
                  "div",
                  {
                    class: `cell ls-${l.state}` + (PROBLEM_STATES.has(l.state) ? " problem" : ""),
                    dataset: { line: l.object, state: l.state },
                    title: l.raw,
                  },
                  h("div", { class: "cell-num" }, l.object),
                  h("div", { class: "cell-state" }, lineLabel(l.state)),
                  h("div", { class: "cell-since", dataset: { since: l.since_ms } }, duration((now() - l.since_ms) / 1000)),
                  h("div", { class: "cell-info" }, l.info || "\u00a0"),
                  seatOf(l) ? h("div", { class: `cell-seat seat-${seatOf(l)}`, dataset: { seat: seatOf(l) } }, t("seat." + seatOf(l))) : null
                )
              )
            )
          )
        )
      : [h("p", { class: "muted panel" }, t("tel.empty"))])
  );
}

// ---- Outbox ----

const obFilter = { state: "dead" };
const OB_STATES = ["dead", "queued", "sent", "coalesced", "skipped", "digested"];

pages.outbox = (root) => {
  const msg = { text: "" };
  return dataPage(
    root,
    () => api("GET", `/api/v1/outbox?state=${obFilter.state}&limit=500`),
    (root, d, page) => drawOutbox(root, d, page, msg),
    { pollMs: 10000 }
  );
};

function drawOutbox(root, d, page, msg) {
  const sel = h(
    "select",
    {
      id: "ob-state",
      onchange: (e) => {
        obFilter.state = e.target.value;
        msg.text = "";
        page.refresh();
      },
    },
    OB_STATES.map((s) => h("option", { value: s, selected: s === obFilter.state }, t("obstate." + s)))
  );
  const retry = (id) => async () => {
    try {
      await api("POST", `/api/v1/outbox/${id}/retry`);
      msg.text = t("ob.retried", { id });
    } catch (e) {
      msg.text = t("inc.failed", { err: e.message });
    }
    page.refresh();
  };
  const op = isOperator();
  const rows = d.messages.map((m) =>
    h(
      "tr",
      { dataset: { msgId: m.id } },
      h("td", null, String(m.id)),
      h("td", null, fmtTime(m.created_ms)),
      h("td", null, m.dest),
      h("td", null, m.event),
      h("td", null, m.incident_id ? h("a", { href: `#/incidents/${m.incident_id}` }, String(m.incident_id)) : "—"),
      h("td", null, String(m.attempts)),
      h("td", { class: "err" }, m.last_error || (m.last_code ? String(m.last_code) : "")),
      op && m.state === "dead"
        ? h("td", null, h("button", { type: "button", dataset: { action: "retry" }, onclick: retry(m.id) }, t("ob.retry")))
        : h("td")
    )
  );
  root.replaceChildren(
    h(
      "section",
      { class: "panel" },
      h("div", { class: "filters" }, h("label", null, t("ob.state"), " ", sel)),
      msg.text ? h("p", { class: "ok-msg" }, msg.text) : null,
      !d.notify
        ? h("p", { class: "muted" }, t("ob.no_notify"))
        : rows.length
        ? h(
            "table",
            { class: "grid outbox" },
            h("thead", null, h("tr", null, ["id", "created", "dest", "event", "incident", "attempts", "error"].map((c) => h("th", null, t("ob.col." + c))), h("th"))),
            h("tbody", null, rows)
          )
        : h("p", { class: "muted" }, t("ob.empty"))
    )
  );
}

// ---- Maintenance ----

// the create form's state survives redraws (the list is polled)
const mtForm = { name: "", hosts: [], other: "", groups: [], start: "now", at: "", duration: "2h", reason: "" };
const MT_DURATIONS = ["30m", "1h", "2h", "4h", "8h", "1d", "3d", "7d"];

pages.maintenance = (root) => {
  const msg = { text: "", error: false };
  return dataPage(
    root,
    async () => {
      const [m, hosts] = await Promise.all([api("GET", "/api/v1/maintenance"), api("GET", "/api/v1/hosts")]);
      return { ...m, hosts: [...new Set(hosts.hosts.map((x) => x.host))].sort() };
    },
    (root, d, page) => drawMaintenance(root, d, page, msg),
    { pollMs: 10000 }
  );
};

function mtTargets(w) {
  return [...(w.hosts || []), ...(w.groups || []).map((g) => t("mt.group", { g }))].join(", ");
}

function mtWhen(w) {
  if (w.weekly) {
    const days = w.weekly.days.map((x) => t("mt.day." + x)).join(" ");
    return t("mt.weekly", { days, from: w.weekly.from, to: w.weekly.to });
  }
  const end = w.ended_ms && w.ended_ms < w.ends_ms ? w.ended_ms : w.ends_ms;
  return `${fmtTime(w.starts_ms)} → ${fmtTime(end)}`;
}

function drawMaintenance(root, d, page, msg) {
  const op = isOperator();
  const end = (w) => async () => {
    try {
      await api("POST", `/api/v1/maintenance/${w.id}/end`);
      msg.text = t("mt.ended_msg", { name: w.name });
      msg.error = false;
    } catch (e) {
      msg.text = t("inc.failed", { err: e.message });
      msg.error = true;
    }
    page.refresh();
  };
  const row = (w, withEnd) =>
    h(
      "tr",
      { dataset: { mtId: w.id || "", state: w.state }, class: "mt-" + w.state },
      h("td", null, w.name),
      h("td", null, mtTargets(w)),
      h("td", null, mtWhen(w)),
      h("td", null, h("span", { class: "status mt-state " + w.state }, t("mt.state." + w.state))),
      h("td", null, w.read_only ? t("mt.from_config") : w.ended_by ? t("mt.by_ended", { by: w.created_by, ended: w.ended_by }) : w.created_by),
      h("td", null, w.reason || ""),
      withEnd && op
        ? h("td", null, h("button", { type: "button", dataset: { action: "end" }, onclick: end(w) }, t("mt.end")))
        : h("td")
    );
  const table = (list, withEnd, empty) =>
    list.length
      ? h(
          "table",
          { class: "grid maint" },
          h("thead", null, h("tr", null, ["name", "targets", "when", "state", "by", "reason"].map((c) => h("th", null, t("mt.col." + c))), h("th"))),
          h("tbody", null, list.map((w) => row(w, withEnd)))
        )
      : h("p", { class: "muted" }, t(empty));
  const active = d.windows.filter((w) => w.state === "active");
  const upcoming = d.windows.filter((w) => w.state === "upcoming");
  const past = d.windows.filter((w) => w.state === "ended" || w.state === "over").reverse();
  root.replaceChildren(
    ...(msg.text ? [h("p", { class: msg.error ? "error" : "ok-msg", id: "mt-msg" }, msg.text)] : []),
    op ? mtFormEl(d, page, msg) : h("p", { class: "muted panel", id: "viewer-note" }, t("mt.viewer_only")),
    h("section", { class: "panel", id: "mt-active" }, h("h2", null, t("mt.active")), table(active, true, "mt.none_active")),
    h("section", { class: "panel", id: "mt-upcoming" }, h("h2", null, t("mt.upcoming")), table(upcoming, true, "mt.none_upcoming")),
    h("section", { class: "panel", id: "mt-past" }, h("h2", null, t("mt.past")), table(past, false, "mt.none_past")),
    h("section", { class: "panel", id: "mt-config" }, h("h2", null, t("mt.config")), table(d.config, false, "mt.none_config"))
  );
}

function mtFormEl(d, page, msg) {
  const set = (k) => (e) => {
    mtForm[k] = e.target.value;
  };
  const toggle = (k, v) => (e) => {
    mtForm[k] = e.target.checked ? [...mtForm[k], v] : mtForm[k].filter((x) => x !== v);
  };
  const submit = async (ev) => {
    ev.preventDefault();
    const hosts = [...mtForm.hosts, ...mtForm.other.split(/[\s,]+/).filter((x) => x)];
    const body = { name: mtForm.name.trim(), hosts, groups: mtForm.groups, duration: mtForm.duration.trim(), reason: mtForm.reason.trim() };
    if (mtForm.start === "at") {
      const ms = new Date(mtForm.at).getTime();
      if (!mtForm.at || Number.isNaN(ms)) {
        msg.text = t("mt.need_start");
        msg.error = true;
        page.render();
        return;
      }
      body.starts = ms;
    } else {
      body.starts = "now";
    }
    try {
      const w = await api("POST", "/api/v1/maintenance", body);
      msg.text = t("mt.created", { name: w.name || body.name });
      msg.error = false;
      Object.assign(mtForm, { name: "", hosts: [], other: "", groups: [], start: "now", at: "", reason: "" });
    } catch (e) {
      msg.text = t("inc.failed", { err: e.message });
      msg.error = true;
    }
    page.refresh();
  };
  const check = (k, v, label) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", checked: mtForm[k].includes(v), dataset: { [k]: v }, onchange: toggle(k, v) }), " ", label);
  return h(
    "form",
    { class: "panel mt-form", id: "mt-form", onsubmit: submit },
    h("h2", null, t("mt.new")),
    h("label", null, h("span", null, t("mt.name")), h("input", { id: "mt-name", required: true, maxlength: "128", value: mtForm.name, oninput: set("name") })),
    h(
      "fieldset",
      null,
      h("legend", null, t("mt.hosts")),
      d.hosts.length ? h("div", { class: "checks" }, d.hosts.map((x) => check("hosts", x, x))) : null,
      h("input", { id: "mt-other", placeholder: t("mt.other_hosts"), value: mtForm.other, oninput: set("other") })
    ),
    d.groups.length ? h("fieldset", null, h("legend", null, t("mt.groups")), h("div", { class: "checks" }, d.groups.map((g) => check("groups", g, g)))) : null,
    h(
      "div",
      { class: "row" },
      h(
        "label",
        null,
        h("span", null, t("mt.start")),
        h(
          "select",
          { id: "mt-start", onchange: (e) => { mtForm.start = e.target.value; page.render(); } },
          ["now", "at"].map((s) => h("option", { value: s, selected: mtForm.start === s }, t("mt.start." + s)))
        )
      ),
      mtForm.start === "at" ? h("input", { id: "mt-at", type: "datetime-local", value: mtForm.at, oninput: set("at") }) : null,
      h(
        "label",
        null,
        h("span", null, t("mt.duration")),
        h("input", { id: "mt-duration", list: "mt-durations", required: true, size: "6", value: mtForm.duration, oninput: set("duration") }),
        h("datalist", { id: "mt-durations" }, MT_DURATIONS.map((x) => h("option", { value: x })))
      )
    ),
    h("label", null, h("span", null, t("mt.reason")), h("textarea", { id: "mt-reason", rows: "2", maxlength: "1024", value: mtForm.reason, oninput: set("reason") })),
    h("div", { class: "buttons" }, h("button", { type: "submit", id: "mt-create" }, t("mt.create")))
  );
}

// ---- Reports ----

const REP_KINDS = ["weekly", "monthly", "attendance", "inspection"];

pages.reports = (root) => {
  const msg = { text: "" };
  return dataPage(root, () => api("GET", "/api/v1/reports"), (root, d, page) => drawReports(root, d, page, msg), {
    pollMs: 30000,
  });
};

function repKindName(kind) {
  return REP_KINDS.includes(kind) ? t("rep.kind." + kind) : kind;
}

function drawReports(root, d, page, msg) {
  const op = isOperator();
  // the archive grouped by kind (in the order of the schedule), newest first within a kind
  const order = d.kinds.map((k) => k.kind);
  for (const r of d.reports) {
    if (!order.includes(r.kind)) {
      order.push(r.kind);
    }
  }
  const run = (kind) => async () => {
    try {
      await api("POST", "/api/v1/reports/run", { kind });
      msg.text = t("rep.started", { kind: repKindName(kind) });
    } catch (e) {
      msg.text = t("inc.failed", { err: e.message });
    }
    page.refresh();
  };
  const link = (r, f) => {
    const ext = f.slice(f.lastIndexOf(".") + 1);
    const label = ext === "csv" ? f.replace(/^report-/, "").replace(/\.csv$/, "") : ext.toUpperCase();
    return h(
      "a",
      { href: `/api/v1/reports/${encodeURIComponent(r.kind)}/${encodeURIComponent(r.period)}/${encodeURIComponent(f)}`, class: "rep-file " + ext, target: ext === "pdf" ? "_blank" : null, rel: "noopener" },
      label
    );
  };
  const files = (r) => {
    const main = r.files.filter((f) => !f.endsWith(".csv"));
    const csv = r.files.filter((f) => f.endsWith(".csv"));
    return h(
      "td",
      { class: "rep-files" },
      main.map((f) => link(r, f)),
      csv.length ? h("details", null, h("summary", null, t("rep.csv", { n: csv.length })), csv.map((f) => link(r, f))) : null
    );
  };
  const sections = order.map((kind) => {
    const k = d.kinds.find((x) => x.kind === kind);
    const rows = d.reports
      .filter((r) => r.kind === kind)
      .sort((a, b) => b.from_ms - a.from_ms)
      .map((r) =>
        h(
          "tr",
          { dataset: { kind: r.kind, period: r.period } },
          h("td", null, r.period),
          h("td", null, fmtTime(r.created_ms)),
          h("td", null, fmtBytes(r.bytes)),
          files(r),
          h("td", { class: "rep-mail " + r.mail }, t("rep.mail." + r.mail, { n: r.mail_sent, of: r.mail_messages }))
        )
      );
    return h(
      "section",
      { class: "panel rep-kind", dataset: { kind } },
      h(
        "h2",
        null,
        repKindName(kind),
        k ? h("span", { class: "muted rep-at" }, " ", k.enabled ? t("rep.at", { at: k.at }) : t("rep.disabled")) : null,
        op && k && k.enabled ? h("button", { type: "button", class: "quiet", dataset: { action: "run" }, onclick: run(kind) }, t("rep.run")) : null
      ),
      rows.length
        ? h(
            "table",
            { class: "grid reports" },
            h("thead", null, h("tr", null, ["period", "created", "size", "files", "mail"].map((c) => h("th", null, t("rep.col." + c))))),
            h("tbody", null, rows)
          )
        : h("p", { class: "muted" }, t("rep.empty"))
    );
  });
  root.replaceChildren(
    ...(msg.text ? [h("p", { class: "ok-msg" }, msg.text)] : []),
    ...(!d.enabled ? [h("p", { class: "muted panel" }, t("rep.off"))] : []),
    ...sections
  );
}

// ---- start ----

function clock() {
  const d = new Date(now());
  const p = (n) => String(n).padStart(2, "0");
  $("#clock").textContent = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

async function main() {
  loadLang(null);
  applyStatic(document);
  $("#login-form").addEventListener("submit", onLogin);
  $("#login-lang").addEventListener("change", onLangChange);
  $("#lang").addEventListener("change", onLangChange);
  $("#logout").addEventListener("click", onLogout);
  window.addEventListener("hashchange", route);
  setInterval(clock, 1000);
  clock();
  // the wp_csrf cookie (readable by the page) tells whether a session may exist; without it
  // the login form shows at once, with no 401 round trip
  if (readCookie("wp_csrf")) {
    try {
      const s = await api("GET", "/api/v1/session");
      startApp({ user: s.user, role: s.role, csrf: s.csrf });
    } catch (e) {
      showLogin();
    }
  } else {
    showLogin();
  }
  window.wpDash.ready = true;
}

main();

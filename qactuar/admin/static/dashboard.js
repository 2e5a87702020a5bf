/* qactuar admin dashboard. No build step; uPlot (vendored) draws the charts.
 *
 * Every request is relative to the page (the page is at the admin socket's "/"),
 * with fetch(..., {credentials: "same-origin"}): the session cookie that
 * POST login set does the authentication; this script never keeps the token.
 * Mutating requests send JSON with content-type: application/json (the
 * browser adds Origin, which the admin app's CSRF check reads).
 *
 * The JSON this script relies on (fields it does not find are shown as "–"):
 *
 *   POST login   {"token": "..."} -> 2xx sets the cookie; 401 wrong token
 *   POST logout  -> 2xx clears it
 *   GET status   -> {
 *     "model": "prefork", "version": "0.2.0", "pid": 123, "uptime": 12.5,   (seconds)
 *     "time": 1733360000.0,          (optional: the server's time.time(); else the browser's)
 *     "totals": {
 *       "requests": 1234,            (optional: cumulative; else the sum of status_classes)
 *       "rps": {"1m": 1.5, "5m": 0.4, "15m": 0.1},
 *       "in_flight": 2,
 *       "connections": {"http": 3, "websocket": 1},
 *       "status_classes": {"1xx": 0, "2xx": 1200, "3xx": 0, "4xx": 30, "5xx": 4},  (cumulative)
 *       "latency": {"p50": 0.0012, "p95": 0.004, "p99": 0.01}   (seconds, or null)
 *     },
 *     "processes": [{"pid": 123, "role": "master", "state": "ready", "age": 12.5,
 *                    "requests": 0, "cpu": 0.31, "rss": 41943040}],   (age, cpu: seconds; rss: bytes)
 *     "config": {"KEY": value, ...},  (secrets already masked by the server)
 *     "live_keys": ["REQUEST_TIMEOUT", ...]
 *   }
 *   GET status/series (optional; history on load) -> {"samples": [{"time": 1733360000.0,
 *     "requests": 1200, "status_classes": {...}, "latency": {"p50": .., "p99": ..},
 *     "processes": 3, "rss": 125829120}, ...]}   (a bare list of samples is read too; a
 *     sample's "rps" number, when present, is used as is)
 *   GET apps     -> {"apps": [{"route": "/blog", "target": "blog:app", "source": "admin"}]}
 *                   (or the bare list; "app" is read when "target" is missing)
 *   POST apps    {"route": "/blog", "app": "blog:app"}
 *   DELETE apps/<route without its leading slash>
 *   PATCH config {"KEY": value}
 *   POST reload
 *   Any error: a status >= 400 with {"error": "reason"} (or "reason"/"detail", or plain text),
 *   shown as text next to what failed.
 */
"use strict";

(function () {
  const POLL_MS = 1000;
  const APPS_EVERY_MS = 5000;
  const KEEP_POINTS = 300;
  const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"];
  const CLASS_COLORS = ["#8a8f98", "#2e8b57", "#2a6fdb", "#d98b00", "#b3261e"];

  const $ = (id) => document.getElementById(id);
  const state = {
    session: 0,        // bumped at each sign-in and sign-out: a stale poll stops itself
    timer: null,
    last: null,        // the previous sample: {t, requests, classes}
    data: null,        // the charts' columns
    charts: null,
    configShown: false,
    appsFetched: 0,
  };

  class ApiError extends Error {
    constructor(status, reason) {
      super(reason);
      this.status = status;
    }
  }

  function reasonOf(resp, data, text) {
    if (data && typeof data === "object") {
      for (const key of ["error", "reason", "detail", "message"]) {
        if (data[key] !== undefined && data[key] !== null) {
          return typeof data[key] === "string" ? data[key] : JSON.stringify(data[key]);
        }
      }
    }
    return (text || "").trim() || resp.status + " " + resp.statusText;
  }

  async function api(method, path, body) {
    const init = {method: method, credentials: "same-origin", cache: "no-store",
                  headers: {"accept": "application/json"}};
    if (method !== "GET") init.headers["content-type"] = "application/json";  // DELETE too
    if (body !== undefined) init.body = JSON.stringify(body);
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "the admin socket cannot be reached (" + err.message + ")");
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (err) { data = null; }
    }
    if (!resp.ok) throw new ApiError(resp.status, reasonOf(resp, data, text));
    return data;
  }

  function routePath(route) {
    return "apps/" + route.replace(/^\/+/, "").split("/").map(encodeURIComponent).join("/");
  }

  // ---- formatting -----------------------------------------------------------------

  function num(value, digits) {
    return typeof value === "number" && isFinite(value) ? value.toFixed(digits) : "–";
  }

  function rate(value) {
    if (typeof value !== "number" || !isFinite(value)) return "–";
    return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
  }

  function ms(seconds) {
    return typeof seconds === "number" ? (seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1) + " ms"
                                       : "–";
  }

  function bytes(n) {
    if (typeof n !== "number" || !isFinite(n)) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
  }

  function age(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds)) return "–";
    const s = Math.floor(seconds);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }

  function shown(value) {
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function setMessage(text, isError) {
    const el = $("message");
    el.textContent = text;
    el.classList.toggle("error", Boolean(isError));
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  // ---- charts ---------------------------------------------------------------------

  function emptyData() {
    const data = {t: [], rps: [], p50: [], p99: [], procs: [], rss: []};
    for (const c of CLASSES) data[c] = [];
    return data;
  }

  function makeCharts() {
    if (typeof window.uPlot !== "function") {
      setMessage("The charts' library did not load; the figures and tables still update.", true);
      return null;
    }
    const width = (el) => Math.max(300, el.clientWidth - 4);
    const make = (id, series, axes, scales) => {
      const el = $(id);
      const opts = {width: width(el), height: 220, scales: Object.assign({x: {time: true}}, scales),
                    series: [{}].concat(series), axes: [{}].concat(axes),
                    cursor: {drag: {x: false, y: false}}};
      return new window.uPlot(opts, [[]].concat(series.map(() => [])), el);
    };
    const fromZero = {y: {range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1]}};
    const line = (label, stroke, extra) => Object.assign({label: label, stroke: stroke, width: 2,
                                                          spanGaps: true}, extra || {});
    return {
      rps: make("chart-rps", [line("requests/s", "#2a6fdb")], [{}], fromZero),
      latency: make("chart-latency", [line("p50 ms", "#2e8b57"), line("p99 ms", "#b3261e")],
                    [{}], fromZero),
      status: make("chart-status", CLASSES.map((c, i) => line(c + "/s", CLASS_COLORS[i])), [{}],
                   fromZero),
      processes: make("chart-processes",
                      [line("processes", "#2a6fdb", {scale: "n"}),
                       line("RSS MiB", "#d98b00", {scale: "mib"})],
                      [{scale: "n"}, {scale: "mib", side: 1, grid: {show: false}}],
                      {n: {range: (u, min, max) => [0, Math.max(1, max + 1)]},
                       mib: {range: (u, min, max) => [0, max > 0 ? max * 1.2 : 1]}}),
    };
  }

  function drawCharts() {
    const c = state.charts, d = state.data;
    if (!c) return;
    c.rps.setData([d.t, d.rps]);
    c.latency.setData([d.t, d.p50, d.p99]);
    c.status.setData([d.t].concat(CLASSES.map((k) => d[k])));
    c.processes.setData([d.t, d.procs, d.rss]);
    $("chart-rps").dataset.points = String(d.t.length);
  }

  function resizeCharts() {
    if (!state.charts) return;
    for (const name of Object.keys(state.charts)) {
      const chart = state.charts[name];
      chart.setSize({width: Math.max(300, chart.root.parentNode.clientWidth - 4), height: 220});
    }
  }

  function classCounts(classes) {
    const counts = {};
    for (const c of CLASSES) counts[c] = classes && typeof classes[c] === "number" ? classes[c] : 0;
    return counts;
  }

  function requestsOf(totals) {
    if (typeof totals.requests === "number") return totals.requests;
    const counts = classCounts(totals.status_classes);
    return CLASSES.reduce((sum, c) => sum + counts[c], 0);
  }

  // One point of every chart from a sample {t, requests, classes, p50, p99, procs, rss};
  // the rates are the change since the previous sample.
  function addPoint(sample, givenRps) {
    const d = state.data, prev = state.last;
    const dt = prev ? sample.t - prev.t : 0;
    let rps = null;
    const perClass = {};
    if (prev && dt > 0) {
      rps = Math.max(0, (sample.requests - prev.requests) / dt);
      for (const c of CLASSES) perClass[c] = Math.max(0, (sample.classes[c] - prev.classes[c]) / dt);
    }
    if (typeof givenRps === "number") rps = givenRps;
    state.last = sample;
    if (prev && dt <= 0) return rps;  // the same instant twice: nothing to add
    d.t.push(sample.t);
    d.rps.push(rps);
    d.p50.push(typeof sample.p50 === "number" ? sample.p50 * 1000 : null);
    d.p99.push(typeof sample.p99 === "number" ? sample.p99 * 1000 : null);
    for (const c of CLASSES) d[c].push(perClass[c] === undefined ? null : perClass[c]);
    d.procs.push(sample.procs);
    d.rss.push(typeof sample.rss === "number" ? sample.rss / 1048576 : null);
    if (d.t.length > KEEP_POINTS) {
      for (const key of Object.keys(d)) d[key].splice(0, d[key].length - KEEP_POINTS);
    }
    return rps;
  }

  async function loadHistory() {
    let data;
    try {
      data = await api("GET", "status/series");
    } catch (err) {
      return;  // no history: the charts start now
    }
    const samples = Array.isArray(data) ? data : (data && (data.samples || data.series)) || [];
    for (const s of samples) {
      if (!s || typeof s !== "object") continue;
      const t = typeof s.time === "number" ? s.time : s.t;
      if (typeof t !== "number") continue;
      const latency = s.latency || {};
      addPoint({t: t, requests: requestsOf(s), classes: classCounts(s.status_classes),
                p50: latency.p50, p99: latency.p99,
                procs: typeof s.processes === "number" ? s.processes : null,
                rss: s.rss}, typeof s.rps === "number" ? s.rps : undefined);
    }
  }

  // ---- rendering /status ----------------------------------------------------------

  function render(status) {
    const totals = status.totals || {};
    const processes = Array.isArray(status.processes) ? status.processes : [];
    $("server").textContent = [status.model ? status.model + " model" : "",
                               status.version ? "qactuar " + status.version : "",
                               status.pid ? "pid " + status.pid : "",
                               typeof status.uptime === "number" ? "up " + age(status.uptime) : ""]
      .filter(Boolean).join(" · ");
    const latency = totals.latency || {};
    const rss = processes.reduce((sum, p) => sum + (typeof p.rss === "number" ? p.rss : 0), 0);
    const t = typeof status.time === "number" ? status.time : Date.now() / 1000;
    const rps = addPoint({t: t, requests: requestsOf(totals),
                          classes: classCounts(totals.status_classes),
                          p50: latency.p50, p99: latency.p99, procs: processes.length, rss: rss});
    const averages = totals.rps || {};
    $("rps").textContent = rate(rps);  // "–" until two samples give a rate
    $("rps-averages").textContent = [averages["1m"], averages["5m"], averages["15m"]]
      .map(rate).join(" / ");
    $("in-flight").textContent = num(totals.in_flight, 0);
    const conns = totals.connections || {};
    $("connections").textContent = num(conns.http, 0) + " / " + num(conns.websocket, 0);
    $("latency").textContent = [latency.p50, latency.p95, latency.p99].map(ms).join(" / ");
    $("process-count").textContent = String(processes.length);
    $("rss-total").textContent = bytes(rss);
    renderProcesses(processes);
    drawCharts();
    if (!state.configShown && status.config && typeof status.config === "object") {
      renderConfig(status.config, Array.isArray(status.live_keys) ? status.live_keys : []);
    }
  }

  function renderProcesses(processes) {
    const body = document.querySelector("#processes tbody");
    const rows = processes.map((p) => {
      const row = document.createElement("tr");
      row.dataset.pid = String(p.pid);
      cell(row, String(p.pid), "number");
      cell(row, p.role || "–");
      cell(row, p.state || "–");
      cell(row, age(p.age));
      cell(row, num(p.requests, 0), "number");
      cell(row, num(p.cpu, 2), "number");
      cell(row, bytes(p.rss), "number");
      return row;
    });
    body.replaceChildren.apply(body, rows);
  }

  // ---- config ---------------------------------------------------------------------

  function parseInput(input, current) {
    if (typeof current === "boolean") return {value: input.checked};
    const text = input.value;
    if (typeof current === "number") {
      const n = Number(text.trim());
      if (text.trim() === "" || !isFinite(n)) return {error: "not a number: " + text};
      return {value: n};
    }
    if (typeof current === "string") return {value: text};
    try {
      return {value: JSON.parse(text)};
    } catch (err) {
      return current === null ? {value: text} : {error: "not valid JSON: " + text};
    }
  }

  function renderConfig(config, liveKeys) {
    const live = new Set(liveKeys);
    const body = document.querySelector("#config tbody");
    const rows = Object.keys(config).sort().map((key) => {
      const value = config[key];
      const row = document.createElement("tr");
      row.dataset.key = key;
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = key;
      row.appendChild(th);
      const valueCell = document.createElement("td");
      const actionCell = document.createElement("td");
      row.appendChild(valueCell);
      cell(row, live.has(key) ? "live" : "restart");
      row.appendChild(actionCell);
      if (!live.has(key)) {
        valueCell.textContent = shown(value);
        return row;
      }
      const label = document.createElement("label");
      label.className = "visually-hidden";
      label.htmlFor = "config-" + key;
      label.textContent = key;
      const input = document.createElement("input");
      input.id = "config-" + key;
      input.name = key;
      if (typeof value === "boolean") {
        input.type = "checkbox";
        input.checked = value;
      } else {
        input.type = "text";
        input.value = shown(value);
        input.spellcheck = false;
      }
      const error = document.createElement("span");
      error.className = "error";
      error.id = "config-error-" + key;
      error.setAttribute("role", "alert");
      input.setAttribute("aria-describedby", error.id);
      valueCell.append(label, input, error);
      const button = document.createElement("button");
      button.type = "button";
      button.id = "config-save-" + key;
      button.textContent = "Apply";
      button.setAttribute("aria-label", "Apply " + key);
      button.addEventListener("click", () => applyConfig(key, value, input, error));
      input.addEventListener("keydown", (event) => {
        if (event.key === "Enter") applyConfig(key, value, input, error);
      });
      actionCell.appendChild(button);
      return row;
    });
    body.replaceChildren.apply(body, rows);
    state.configShown = true;
  }

  async function applyConfig(key, current, input, error) {
    error.textContent = "";
    const parsed = parseInput(input, current);
    if (parsed.error) {
      error.textContent = parsed.error;
      return;
    }
    const change = {};
    change[key] = parsed.value;
    try {
      await api("PATCH", "config", change);
    } catch (err) {
      error.textContent = err.status ? err.status + ": " + err.message : err.message;
      if (err.status === 401) signedOut("Your session ended: sign in again.");
      return;
    }
    setMessage(key + " set to " + shown(parsed.value) + ".", false);
    state.configShown = false;  // the next /status shows the value in force
  }

  // ---- apps -----------------------------------------------------------------------

  async function loadApps() {
    state.appsFetched = Date.now();
    let data;
    try {
      data = await api("GET", "apps");
    } catch (err) {
      $("apps-error").textContent = "Apps: " + err.message;
      if (err.status === 401) signedOut("Your session ended: sign in again.");
      return;
    }
    const apps = Array.isArray(data) ? data : (data && data.apps) || [];
    const body = document.querySelector("#apps tbody");
    const rows = apps.map((app) => {
      const row = document.createElement("tr");
      row.dataset.route = app.route;
      cell(row, app.route);
      cell(row, app.target || app.app || "–");
      cell(row, app.source || "–");
      const action = document.createElement("td");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Unmount";
      button.setAttribute("aria-label", "Unmount " + app.route);
      button.addEventListener("click", () => unmount(app.route));
      action.appendChild(button);
      row.appendChild(action);
      return row;
    });
    body.replaceChildren.apply(body, rows);
  }

  async function unmount(route) {
    $("apps-error").textContent = "";
    try {
      await api("DELETE", routePath(route));
    } catch (err) {
      $("apps-error").textContent = "Unmount " + route + ": " + err.message;
      return;
    }
    setMessage("Unmounted " + route + ".", false);
    await loadApps();
  }

  async function mount(event) {
    event.preventDefault();
    $("apps-error").textContent = "";
    const route = $("mount-route").value.trim();
    const app = $("mount-app").value.trim();
    try {
      await api("POST", "apps", {route: route, app: app});
    } catch (err) {
      $("apps-error").textContent = "Mount " + route + ": " + err.message;
      return;
    }
    $("mount-route").value = "";
    $("mount-app").value = "";
    setMessage("Mounted " + app + " at " + route + ".", false);
    await loadApps();
  }

  // ---- session --------------------------------------------------------------------

  async function poll(session) {
    if (session !== state.session) return;
    try {
      render(await api("GET", "status"));
      if ($("message").classList.contains("error")) setMessage("", false);
    } catch (err) {
      if (session !== state.session) return;
      if (err.status === 401) {
        signedOut("Your session ended: sign in again.");
        return;
      }
      setMessage("Status: " + err.message, true);
    }
    if (session !== state.session) return;
    if (Date.now() - state.appsFetched >= APPS_EVERY_MS) loadApps();
    state.timer = setTimeout(() => poll(session), POLL_MS);
  }

  async function signedIn() {
    state.session += 1;
    const session = state.session;
    state.last = null;
    state.data = emptyData();
    state.configShown = false;
    $("sign-in").hidden = true;
    $("dashboard").hidden = false;
    $("session-actions").hidden = false;
    if (!state.charts) state.charts = makeCharts();
    await loadHistory();
    if (session !== state.session) return;
    state.last = null;  // the live rates start from the first live sample
    loadApps();
    poll(session);
  }

  function signedOut(message) {
    state.session += 1;
    clearTimeout(state.timer);
    $("dashboard").hidden = true;
    $("session-actions").hidden = true;
    $("sign-in").hidden = false;
    $("server").textContent = "";
    $("sign-in-error").textContent = message || "";
    $("token").focus();
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $("token");
    const token = input.value;
    input.value = "";  // the token is sent once, never kept
    $("sign-in-error").textContent = "";
    try {
      await api("POST", "login", {token: token});
    } catch (err) {
      $("sign-in-error").textContent = err.status === 401 ? "Wrong token." : err.message;
      return;
    }
    setMessage("", false);
    signedIn();
  }

  async function signOut() {
    try {
      await api("POST", "logout", {});
    } catch (err) {
      setMessage("Sign out: " + err.message, true);
      return;
    }
    signedOut("Signed out.");
  }

  async function reload() {
    setMessage("Reloading the apps…", false);
    try {
      await api("POST", "reload", {});
    } catch (err) {
      setMessage("Reload: " + err.message, true);
      return;
    }
    setMessage("Apps reloaded.", false);
    state.configShown = false;
    loadApps();
  }

  async function start() {
    $("sign-in-form").addEventListener("submit", signIn);
    $("mount-form").addEventListener("submit", mount);
    $("sign-out").addEventListener("click", signOut);
    $("reload").addEventListener("click", reload);
    window.addEventListener("resize", resizeCharts);
    try {
      await api("GET", "status");  // a session cookie still valid?
    } catch (err) {
      signedOut(err.status === 401 ? "" : err.message);
      return;
    }
    signedIn();
  }

  start();
})();

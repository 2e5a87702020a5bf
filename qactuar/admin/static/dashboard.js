/* qactuar admin dashboard: the page's script, an ES module (charts.js draws the figures
 * with the vendored uPlot, config.js is the config table, format.js writes figures).
 * No build step.
 *
 * Every request is relative to the page (the page is at the admin socket's "/"),
 * with fetch(..., {credentials: "same-origin"}): the session cookie that
 * POST login set, with the session's secret that POST login answered, kept in
 * sessionStorage and sent as X-Qactuar-Session on every request (the cookie
 * alone reaches every port of the host, so it is not enough); this script
 * never keeps the token.
 * Mutating requests send JSON with content-type: application/json (the
 * browser adds Origin, which the admin app's CSRF check reads).
 *
 * The JSON this script relies on (fields it does not find are shown as "–"; where two
 * names are given, either is read: the first is the admin app's, the second the brief's):
 *
 *   POST login   {"token": "..."} -> 2xx sets the cookie, answers {"session_secret": "..."};
 *                401 wrong token
 *   POST logout  -> 2xx clears it
 *   GET status   -> {
 *     "model": "prefork", "version": "0.2.0", "pid": 123, "uptime": 12.5,   (seconds)
 *     "totals": {
 *       "requests": 1234,            (cumulative; else the sum of status_classes)
 *       "requests_per_second" | "rps": {"1m": 1.5, "5m": 0.4, "15m": 0.1},
 *       "in_flight": 2,
 *       "connections": {"http": 3, "websocket": 1},
 *       "status_classes": {"1xx": 0, "2xx": 1200, "3xx": 0, "4xx": 30, "5xx": 4},  (cumulative)
 *       "latency": {"p50": 0.0012, "p95": 0.004, "p99": 0.01}   (seconds, or null)
 *     },
 *     "processes": [{"pid": 123, "role": "master", "state": "ready", "age": 12.5,
 *                    "requests": 0, "cpu_percent": 3.5 | "cpu": 0.31 (seconds),
 *                    "rss": 41943040 (bytes)}]
 *   }
 *   GET status/series -> {"interval": 1, "points": [{"t": 1733360000.0 (time.time()),
 *     "rps": 6.9, "p50": 0.001, "p99": 0.01, "classes": {"2xx": 6.0, ...} (requests/s),
 *     "processes": 3, "rss": 125829120}, ...]}, oldest first. When it answers, the
 *     charts and the requests/s figure follow its points (fetched with each /status);
 *     else they are the change between two answers of /status.
 *   GET config   -> {"config": {"KEY": value, ...} (secrets masked),
 *                    "live" | "live_keys": ["REQUEST_TIMEOUT", ...]}
 *   GET apps     -> {"apps": [{"route": "/blog", "target": "blog:app", "source": "admin"}]}
 *                   (or the bare list; "app" is read when "target" is missing)
 *   POST apps    {"route": "/blog", "app": "blog:app"}
 *   DELETE apps/<route without its leading slash>
 *   PATCH config {"KEY": value}
 *   POST reload
 *   Any error: a status >= 400 with {"error": "reason"} (or "reason"/"detail", or plain text),
 *   shown as text next to what failed.
 */
import {Figures, classCounts, requestsOf} from "./charts.js";
import {configTable} from "./config.js";
import {age, bytes, ms, num, rate} from "./format.js";

(function () {
  const POLL_MS = 1000;
  const SECRET_KEY = "qactuar-session";
  const APPS_EVERY_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const figures = new Figures({rps: "chart-rps", latency: "chart-latency",
                                status: "chart-status", processes: "chart-processes"});
  const config = configTable({api: api, signedOut: signedOut, setMessage: setMessage});
  const state = {
    session: 0,        // bumped at each sign-in and sign-out: a stale poll stops itself
    timer: null,
    series: false,     // /status/series answers: the charts follow its points
    warned: false,     // the charts' library missing, said once
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
    const secret = sessionStorage.getItem(SECRET_KEY);
    if (secret) init.headers["x-qactuar-session"] = secret;
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

  /** /status/series' points, or null when the server has none (or no such endpoint). */
  async function seriesPoints() {
    let data;
    try {
      data = await api("GET", "status/series");
    } catch (err) {
      if (err.status === 401) throw err;
      return null;
    }
    const points = Array.isArray(data) ? data : data && data.points;
    return Array.isArray(points) ? points : null;
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
    if (!state.series) {  // the rates from the change since the last answer
      const rps = figures.add({t: Date.now() / 1000, requests: requestsOf(totals),
                               classes: classCounts(totals.status_classes),
                               p50: latency.p50, p99: latency.p99, procs: processes.length,
                               rss: rss});
      $("rps").textContent = rate(rps);  // "–" until two answers give a rate
    }
    const averages = totals.requests_per_second || totals.rps || {};
    $("rps-averages").textContent = [averages["1m"], averages["5m"], averages["15m"]]
      .map(rate).join(" / ");
    $("in-flight").textContent = num(totals.in_flight, 0);
    const conns = totals.connections || {};
    $("connections").textContent = num(conns.http, 0) + " / " + num(conns.websocket, 0);
    $("latency").textContent = [latency.p50, latency.p95, latency.p99].map(ms).join(" / ");
    $("process-count").textContent = String(processes.length);
    $("rss-total").textContent = bytes(rss);
    renderProcesses(processes);
  }

  function draw() {
    if (!figures.draw() && !state.warned) {
      state.warned = true;
      setMessage("The charts' library did not load; the figures and tables still update.", true);
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
      cell(row, typeof p.cpu_percent === "number" ? num(p.cpu_percent, 1) + " %"
                : typeof p.cpu === "number" ? num(p.cpu, 2) + " s" : "–", "number");
      cell(row, bytes(p.rss), "number");
      return row;
    });
    body.replaceChildren.apply(body, rows);
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
      if (state.series) {
        const points = await seriesPoints();
        const rps = points ? figures.addPoints(points) : null;
        if (rps !== null) $("rps").textContent = rate(rps);
      }
      draw();
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
    figures.reset();
    $("sign-in").hidden = true;
    $("dashboard").hidden = false;
    $("session-actions").hidden = false;
    let history = null;
    try {
      history = await seriesPoints();
    } catch (err) {
      signedOut("Your session ended: sign in again.");
      return;
    }
    if (session !== state.session) return;
    state.series = history !== null;
    if (history) figures.addPoints(history);
    loadApps();
    config.load();
    poll(session);
  }

  function signedOut(message) {
    sessionStorage.removeItem(SECRET_KEY);
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
      const answer = await api("POST", "login", {token: token});
      if (answer && answer.session_secret) {
        sessionStorage.setItem(SECRET_KEY, answer.session_secret);
      }
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
    loadApps();
    config.load();
  }

  // A failure of this script is shown as text too (and counted, for the tests).
  function scriptFailed(reason) {
    const body = document.body;
    body.dataset.scriptErrors = String(Number(body.dataset.scriptErrors || 0) + 1);
    setMessage("The page's script failed: " + reason, true);
  }

  async function start() {
    window.addEventListener("error", (event) => scriptFailed(event.message));
    window.addEventListener("unhandledrejection", (event) => scriptFailed(
      event.reason && event.reason.message ? event.reason.message : String(event.reason)));
    $("sign-in-form").addEventListener("submit", signIn);
    $("mount-form").addEventListener("submit", mount);
    $("sign-out").addEventListener("click", signOut);
    $("reload").addEventListener("click", reload);
    window.addEventListener("resize", () => figures.resize());
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

/* qactuar admin dashboard: the figures over time, drawn with uPlot (vendored, a
 * classic script that defines window.uPlot before this module runs).
 *
 * Two sources of points: ``add`` takes a sample of /status, {t (seconds since
 * the epoch), requests and classes (cumulative counts), p50, p99 (seconds),
 * procs, rss (bytes)}, and draws the rates of change from the previous sample;
 * ``addPoints`` takes /status/series' per-second points, whose rates the server
 * computed: {t, rps, classes: {"2xx": requests/s, ...}, p50, p99, processes, rss}.
 */

export const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const CLASS_COLORS = ["#8a8f98", "#2e8b57", "#2a6fdb", "#d98b00", "#b3261e"];
const KEEP_POINTS = 300;
const HEIGHT = 220;

export function classCounts(classes) {
  const counts = {};
  for (const c of CLASSES) counts[c] = classes && typeof classes[c] === "number" ? classes[c] : 0;
  return counts;
}

/** Requests answered so far: "requests" when the server gives it, else the classes' sum. */
export function requestsOf(totals) {
  if (typeof totals.requests === "number") return totals.requests;
  const counts = classCounts(totals.status_classes);
  return CLASSES.reduce((sum, c) => sum + counts[c], 0);
}

function emptyData() {
  const data = {t: [], rps: [], p50: [], p99: [], procs: [], rss: []};
  for (const c of CLASSES) data[c] = [];
  return data;
}

export class Figures {
  /** ``ids``: the four charts' element ids {rps, latency, status, processes}. */
  constructor(ids) {
    this.ids = ids;
    this.charts = null;
    this.reset();
  }

  reset() {
    this.data = emptyData();
    this.last = null;
  }

  /** Make the charts (their elements must be visible, to have a width); false without uPlot. */
  draw() {
    if (!this.charts) {
      if (typeof window.uPlot !== "function") return false;
      this.charts = this.make();
    }
    const c = this.charts, d = this.data;
    c.rps.setData([d.t, d.rps]);
    c.latency.setData([d.t, d.p50, d.p99]);
    c.status.setData([d.t].concat(CLASSES.map((k) => d[k])));
    c.processes.setData([d.t, d.procs, d.rss]);
    document.getElementById(this.ids.rps).dataset.points = String(d.t.length);
    return true;
  }

  resize() {
    if (!this.charts) return;
    for (const chart of Object.values(this.charts)) {
      chart.setSize({width: Math.max(300, chart.root.parentNode.clientWidth - 4), height: HEIGHT});
    }
  }

  /** Add a sample of /status; the requests/s since the previous one, or null. */
  add(sample) {
    const prev = this.last;
    const dt = prev ? sample.t - prev.t : 0;
    let rps = null;
    const perClass = {};
    if (prev && dt > 0) {
      rps = Math.max(0, (sample.requests - prev.requests) / dt);
      for (const c of CLASSES) perClass[c] = Math.max(0, (sample.classes[c] - prev.classes[c]) / dt);
    }
    this.last = sample;
    if (!prev || dt > 0) this.push(sample, rps, perClass);  // not the same instant twice
    return rps;
  }

  /** Add /status/series' points newer than the last one drawn; the newest's requests/s. */
  addPoints(points) {
    let rps = null;
    for (const p of points) {
      if (!p || typeof p !== "object") continue;
      const t = typeof p.t === "number" ? p.t : p.time;
      const n = this.data.t.length;
      if (typeof t !== "number" || (n && t <= this.data.t[n - 1])) continue;
      const latency = p.latency || {};
      const classes = {};
      for (const c of CLASSES) classes[c] = p.classes && typeof p.classes[c] === "number"
        ? p.classes[c] : null;
      rps = typeof p.rps === "number" ? p.rps : null;
      this.push({t: t, p50: typeof p.p50 === "number" ? p.p50 : latency.p50,
                 p99: typeof p.p99 === "number" ? p.p99 : latency.p99,
                 procs: typeof p.processes === "number" ? p.processes : null, rss: p.rss},
                rps, classes);
    }
    return rps;
  }

  push(sample, rps, perClass) {
    const d = this.data;
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
  }

  make() {
    const fromZero = {y: {range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1]}};
    const line = (label, stroke, extra) => Object.assign({label: label, stroke: stroke, width: 2,
                                                          spanGaps: true}, extra || {});
    const make = (id, series, axes, scales) => {
      const el = document.getElementById(id);
      const opts = {width: Math.max(300, el.clientWidth - 4), height: HEIGHT,
                    scales: Object.assign({x: {time: true}}, scales),
                    series: [{}].concat(series), axes: [{}].concat(axes),
                    cursor: {drag: {x: false, y: false}}};
      return new window.uPlot(opts, [[]].concat(series.map(() => [])), el);
    };
    return {
      rps: make(this.ids.rps, [line("requests/s", "#2a6fdb")], [{}], fromZero),
      latency: make(this.ids.latency, [line("p50 ms", "#2e8b57"), line("p99 ms", "#b3261e")],
                    [{}], fromZero),
      status: make(this.ids.status, CLASSES.map((c, i) => line(c + "/s", CLASS_COLORS[i])),
                   [{}], fromZero),
      processes: make(this.ids.processes,
                      [line("processes", "#2a6fdb", {scale: "n"}),
                       line("RSS MiB", "#d98b00", {scale: "mib"})],
                      [{scale: "n"}, {scale: "mib", side: 1, grid: {show: false}}],
                      {n: {range: (u, min, max) => [0, Math.max(1, max + 1)]},
                       mib: {range: (u, min, max) => [0, max > 0 ? max * 1.2 : 1]}}),
    };
  }
}

// The war-room board: polls /board.json and draws it. Every text from the state is set with
// textContent (never as HTML), so a summary like <script>…</script> shows as text.
(function () {
  "use strict";
  const params = new URLSearchParams(window.location.search);
  const token = params.get("token") || "";
  const pollMs = Number(document.body.dataset.pollMs) || 2000;
  const charts = new Map(); // plot key -> uPlot instance
  const KNOWN = new Set(["launch", "rollout", "incidents", "readiness", "next", "decisions", "readings"]);
  let tz = "UTC";

  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function time(ts) {
    if (ts === null || ts === undefined) return "–";
    return new Intl.DateTimeFormat("en-US", {
      timeZone: tz, hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short",
    }).format(new Date(ts * 1000));
  }

  function dayTime(ts) {
    return new Intl.DateTimeFormat("en-US", {
      timeZone: tz, weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23", timeZoneName: "short",
    }).format(new Date(ts * 1000));
  }

  function duration(seconds) {
    let s = Math.max(0, Math.round(seconds));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    const parts = [];
    if (d) parts.push(d + "d");
    if (h) parts.push(h + "h");
    if (m) parts.push(m + "m");
    if (!parts.length || (s && !d && !h)) parts.push(s + "s");
    return parts.join("");
  }

  function number(value) {
    return Number.isInteger(value) ? String(value) : String(Math.round(value * 100) / 100);
  }

  // -- the sections -------------------------------------------------------------------
  function drawLaunch(launch, clock) {
    $("launch-name").textContent = launch.name + (launch.rehearsal ? " (rehearsal)" : "");
    $("tlabel").textContent = clock.label || "T0 not set";
    const parts = [];
    if (launch.t0) parts.push("T0 " + dayTime(launch.t0));
    parts.push(launch.started_at ? "announced at " + time(launch.started_at) : "not announced yet");
    $("t0").textContent = parts.join(" · ");
  }

  function drawIncidents(data, now) {
    $("incident-count").textContent = "(" + data.count + ")";
    const rows = clear($("incident-rows"));
    if (!data.open.length) {
      const tr = el("tr");
      const td = el("td", "None open", "empty");
      td.colSpan = 6;
      tr.appendChild(td);
      rows.appendChild(tr);
      return;
    }
    for (const i of data.open) {
      const tr = el("tr", null, i.severity);
      tr.dataset.incident = "INC-" + i.number;
      tr.appendChild(el("td", "INC-" + i.number));
      tr.appendChild(el("td", i.severity_name, "sev"));
      tr.appendChild(el("td", i.summary, "summary"));
      tr.appendChild(el("td", i.owner || "nobody"));
      tr.appendChild(el("td", duration(now - i.declared_at)));
      tr.appendChild(i.acknowledged_at
        ? el("td", "by " + (i.acknowledged_by || "?") + " at " + time(i.acknowledged_at))
        : el("td", "NOT ACKNOWLEDGED", "unacked"));
      rows.appendChild(tr);
    }
  }

  function drawRollout(data) {
    const box = $("rollout");
    if (!data || !Object.keys(data).length) { box.textContent = ""; return; }
    let text = data.phase ? "Rollout: " + data.phase + " at " + number(data.percent) + "% since " + time(data.entered_at)
      : "Rollout: not started";
    text += data.next ? " · next " + data.next + " at " + number(data.next_percent) + "%" : " · the last phase";
    box.textContent = text;
  }

  function drawReadiness(data) {
    $("readiness-count").textContent = data.ready + "/" + data.all + " ready";
    const list = clear($("readiness-list"));
    if (!data.all) list.appendChild(el("li", "no readiness gates", "empty"));
    else if (!data.critical_not_ready.length) list.appendChild(el("li", "every critical gate is ready", "empty"));
    for (const g of data.critical_not_ready) {
      const item = el("li", g.key + " (" + g.state.replace(/_/g, " ") + "): " + g.text + " · owner " + g.owner +
        (g.due_at ? " · due " + time(g.due_at) : ""), "over");
      item.dataset.gate = g.key;
      list.appendChild(item);
    }
  }

  function drawNext(data) {
    const list = clear($("next-list"));
    const add = (label, value) => { list.appendChild(el("dt", label)); list.appendChild(el("dd", value)); };
    add("Heartbeat", data.heartbeat ? time(data.heartbeat) : (data.heartbeat_paused ? "paused" : "none scheduled"));
    add("Checkpoint", data.checkpoint ? time(data.checkpoint.at) + " (" + data.checkpoint.label + ")" : "none scheduled");
    add("Mark", data.mark ? data.mark.label + " at " + time(data.mark.at) + (data.mark.text ? ": " + data.mark.text : "")
      : "none to come");
  }

  function drawDecisions(data) {
    const list = clear($("decision-list"));
    if (!data.latest.length) list.appendChild(el("li", "none yet", "empty"));
    for (const d of data.latest) list.appendChild(el("li", time(d.at) + " " + d.actor + " (" + d.kind + "): " + d.text));
  }

  function drawReadings(data) {
    const list = clear($("reading-list"));
    if (!data.latest.length) list.appendChild(el("li", "nothing measured", "empty"));
    for (const r of data.latest) {
      let text = r.name + ": ";
      if (r.at === null) text += "no reading yet";
      else if (r.failed) text += "FAILED at " + time(r.at);
      else text += number(r.value) + " " + r.unit + (r.threshold !== null ? (r.over ? " — over " : " — within ") +
        number(r.threshold) + " " + r.unit : "") + " at " + time(r.at);
      list.appendChild(el("li", text, r.over || r.failed ? "over" : ""));
    }
  }

  function drawOthers(sections) {
    // a section this page has no drawing of yet: its fields as text
    const box = clear($("more-sections"));
    for (const [name, data] of Object.entries(sections)) {
      if (KNOWN.has(name)) continue;
      const section = el("section");
      section.id = "section-" + name;
      section.appendChild(el("h2", name.replace(/_/g, " ")));
      const list = el("ul");
      for (const [key, value] of Object.entries(data)) {
        list.appendChild(el("li", key + ": " + (typeof value === "object" ? JSON.stringify(value) : value)));
      }
      section.appendChild(list);
      box.appendChild(section);
    }
  }

  // -- the plots -----------------------------------------------------------------------
  const AXES = [
    { stroke: "#8b98a5", grid: { stroke: "#2a323b" }, ticks: { stroke: "#2a323b" } },
    { stroke: "#8b98a5", grid: { stroke: "#2a323b" }, ticks: { stroke: "#2a323b" } },
  ];

  function chartWidth(container) {
    return Math.max(320, container.clientWidth - 10);
  }

  function plot(key, container, title, series, data) {
    let chart = charts.get(key);
    if (chart && chart.series.length === series.length + 1) {
      chart.setData(data);
      return;
    }
    if (chart) { chart.destroy(); charts.delete(key); }
    const box = el("div", null, "chart");
    box.dataset.plot = key;
    box.appendChild(el("h3", title));
    container.appendChild(box);
    chart = new uPlot({
      width: chartWidth(container), height: 260,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), tz),
      scales: { x: { time: true } },
      axes: AXES,
      series: [{}, ...series],
    }, data, box);
    charts.set(key, chart);
  }

  function drawMetricPlots(metrics) {
    const container = $("metric-charts");
    const keep = new Set();
    if (!metrics.length && !container.querySelector(".empty")) container.appendChild(el("p", "No metric is measured.", "empty"));
    for (const m of metrics) {
      const key = "metric:" + m.name;
      keep.add(key);
      const xs = m.points.map((p) => p[0]);
      const ys = m.points.map((p) => p[1]);
      const series = [{ label: m.name + " (" + m.unit + ")", stroke: "#4ea8ff", width: 2, spanGaps: false }];
      const data = [xs, ys];
      if (m.threshold !== null) {
        series.push({ label: "threshold " + number(m.threshold) + " " + m.unit, stroke: "#ff5c5c", width: 1.5,
          dash: [8, 6], points: { show: false } });
        data.push(xs.map(() => m.threshold));
      }
      plot(key, container, m.name, series, data);
    }
    for (const [key, chart] of charts) {
      if (key.startsWith("metric:") && !keep.has(key)) { chart.destroy(); charts.delete(key); }
    }
  }

  function drawIncidentPlot(timeline, now, since) {
    // cumulative counts, stepped, on one time axis over the launch: every moment one changed, and now
    const names = ["declared", "acknowledged", "resolved"];
    const colours = { declared: "#ff5c5c", acknowledged: "#ffb020", resolved: "#3ecf8e" };
    const moments = [...names.flatMap((n) => timeline[n].map((p) => p[0])), now];
    if (since !== null && since < now) moments.push(since);
    const xs = Array.from(new Set(moments)).sort((a, b) => a - b);
    const counts = names.map((n) => xs.map((x) => timeline[n].filter((p) => p[0] <= x).length));
    const stepped = uPlot.paths.stepped({ align: 1 });
    const series = names.map((n) => ({ label: n, stroke: colours[n], width: 2, paths: stepped }));
    plot("incidents", $("incident-chart"), "declared · acknowledged · resolved", series, [xs, ...counts]);
  }

  // -- polling -------------------------------------------------------------------------
  function draw(state) {
    tz = state.timezone || "UTC";
    const s = state.sections;
    const now = state.clock.now;
    drawLaunch(s.launch, state.clock);
    drawIncidents(s.incidents, now);
    drawRollout(s.rollout);
    if (s.readiness) drawReadiness(s.readiness);
    drawNext(s.next);
    drawDecisions(s.decisions);
    drawReadings(s.readings);
    drawOthers(s);
    drawMetricPlots(state.plots.metrics);
    const starts = state.plots.metrics.filter((m) => m.points.length).map((m) => m.points[0][0]);
    if (s.launch.t0) starts.push(s.launch.t0);
    drawIncidentPlot(state.plots.incidents, now, starts.length ? Math.min(...starts) : null);
    $("status").textContent = "updated " + time(now);
    document.body.dataset.updated = String(now);
  }

  async function poll() {
    try {
      const response = await fetch("/board.json?token=" + encodeURIComponent(token), { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      draw(await response.json());
    } catch (error) {
      $("status").textContent = "connection lost, retrying (" + error.message + ")";
    } finally {
      window.setTimeout(poll, pollMs);
    }
  }

  poll();
})();

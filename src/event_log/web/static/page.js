"use strict";
(() => {
  const base = document.body.dataset.base;
  const $ = (id) => document.getElementById(id);
  const form = $("filter-form");
  const feed = $("events");
  const MAX_FEED = 500;
  const seen = new Set();
  let source = null;
  let lastId = null;
  let summaryTimer = null;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // A stable colour per event type: a hue per family, a shade per member.
  const HUES = { task: 217, agent: 152, bid: 38, auction: 271, tool: 187, system: 0 };
  function hash(text) {
    let h = 0;
    for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0;
    return Math.abs(h);
  }
  function colour(type) {
    if (type === "system.warning") return "hsl(32 90% 50%)";
    if (type === "system.info") return "hsl(210 10% 55%)";
    const family = type.split(".")[0];
    const hue = family in HUES ? HUES[family] : hash(family) % 360;
    return "hsl(" + hue + " 70% " + (38 + (hash(type) % 4) * 8) + "%)";
  }

  function filterParams() {
    const params = new URLSearchParams();
    const data = new FormData(form);
    for (const t of String(data.get("type") || "").split(",")) {
      if (t.trim()) params.append("type", t.trim());
    }
    for (const name of ["source", "task_id", "agent_id"]) {
      const v = String(data.get(name) || "").trim();
      if (v) params.set(name, v);
    }
    return params;
  }

  async function getJSON(path) {
    const response = await fetch(base + path, { headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof body.detail === "string" ? body.detail : response.statusText;
      throw new Error(response.status + ": " + detail);
    }
    return body;
  }

  function clock(iso) {
    const d = new Date(iso);
    const pad = (n, w) => String(n).padStart(w || 2, "0");
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) +
      "." + pad(d.getMilliseconds(), 3);
  }

  function typeBadge(type) {
    const badge = el("span", "type", type);
    badge.style.borderLeftColor = colour(type);
    return badge;
  }

  function taskLink(taskId) {
    const a = el("a", "chip task", taskId);
    a.href = "#task=" + encodeURIComponent(taskId);
    a.title = "Show this task's timeline";
    return a;
  }

  function eventItem(ev, fresh) {
    const li = el("li", fresh ? "ev fresh" : "ev");
    li.dataset.eventId = ev.id;
    const time = el("time", null, clock(ev.timestamp));
    time.dateTime = ev.timestamp;
    time.title = ev.timestamp;
    li.append(time, typeBadge(ev.event_type), el("span", "src", ev.source));
    if (ev.task_id !== null && ev.task_id !== undefined) li.append(taskLink(ev.task_id));
    if (ev.agent_id !== null && ev.agent_id !== undefined) {
      const agent = el("button", "chip agent", ev.agent_id);
      agent.type = "button";
      agent.title = "Filter by this agent";
      agent.addEventListener("click", () => {
        form.elements.namedItem("agent_id").value = ev.agent_id;
        applyFilters();
      });
      li.append(agent);
    }
    if (ev.data !== null && ev.data !== undefined) {
      const details = el("details");
      const keys = Object.keys(ev.data);
      details.append(el("summary", null, "data: " + keys.slice(0, 4).join(", ") +
        (keys.length > 4 ? ", …" : "")));
      details.append(el("pre", null, JSON.stringify(ev.data, null, 2)));
      li.append(details);
    }
    return li;
  }

  function updateCount() {
    $("feed-count").textContent = feed.children.length ? feed.children.length + " shown" : "";
    $("feed-empty").hidden = feed.children.length > 0;
  }

  function addEvent(ev, live) {
    if (seen.has(ev.id)) return;
    seen.add(ev.id);
    const item = eventItem(ev, live);
    if (live) feed.prepend(item); else feed.append(item);
    while (feed.children.length > MAX_FEED) {
      seen.delete(feed.lastElementChild.dataset.eventId);
      feed.lastElementChild.remove();
    }
    updateCount();
  }

  function setStatus(state, text) {
    const status = $("status");
    status.dataset.state = state;
    status.textContent = text || state;
  }

  function connect() {
    if (source) source.close();
    const params = filterParams();
    if (lastId) params.set("cursor", lastId);
    source = new EventSource(base + "/stream?" + params.toString());
    source.onopen = () => setStatus("live");
    source.onmessage = (message) => {
      const ev = JSON.parse(message.data);
      lastId = ev.id;
      addEvent(ev, true);
      scheduleSummary();
      if (ev.task_id !== null && ev.task_id === openTask) loadTimeline(openTask);
    };
    source.addEventListener("error", (message) => {
      if (message.data) setStatus("offline", JSON.parse(message.data).detail);
      if (source.readyState === EventSource.CLOSED) {
        // Refused (a 4xx/5xx answer), so the browser gives up: start over from a
        // fresh listing in a moment, which also drops a cursor gone stale.
        setStatus("offline", "offline, retrying");
        source.close();
        setTimeout(loadFeed, 3000);
      } else {
        setStatus("connecting", "reconnecting");
      }
    });
  }

  async function loadFeed() {
    const params = filterParams();
    params.set("limit", "100");
    feed.replaceChildren();
    seen.clear();
    lastId = null;
    try {
      const page = await getJSON("/events?" + params.toString());
      for (const ev of page.events) addEvent(ev, false);
      // Resume the stream after the newest event shown, so nothing falls between.
      if (page.events.length) lastId = page.events[0].id;
    } catch (error) {
      setStatus("offline", String(error.message));
    }
    updateCount();
    connect();
  }

  function applyFilters() {
    const params = filterParams();
    const query = params.toString();
    history.replaceState(null, "", (query ? "?" + query : location.pathname) + location.hash);
    loadFeed();
  }

  // -- summary chart ----------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function drawChart(summary) {
    const chart = $("timechart");
    const width = Math.max(chart.clientWidth || 300, 200);
    const height = 170;
    const left = 28, bottom = 18, top = 6;
    chart.setAttribute("viewBox", "0 0 " + width + " " + height);
    chart.replaceChildren();
    const buckets = summary.buckets;
    const max = Math.max(1, ...buckets.map((b) => b.total));
    const plotH = height - bottom - top;
    const slot = (width - left) / Math.max(1, buckets.length);
    const barW = Math.max(1, slot - 1);
    const axis = svg("line", { x1: left, y1: top + plotH, x2: width, y2: top + plotH,
      stroke: "#cbd5e1" });
    chart.append(axis);
    const maxLabel = svg("text", { x: left - 4, y: top + 8, "text-anchor": "end" });
    maxLabel.textContent = String(max);
    const zero = svg("text", { x: left - 4, y: top + plotH, "text-anchor": "end" });
    zero.textContent = "0";
    chart.append(maxLabel, zero);
    buckets.forEach((bucket, i) => {
      const x = left + i * slot;
      let y = top + plotH;
      const types = Object.keys(bucket.counts).sort();
      for (const type of types) {
        const h = (bucket.counts[type] / max) * plotH;
        y -= h;
        const rect = svg("rect", { class: "bar", x: x.toFixed(1), y: y.toFixed(1),
          width: barW.toFixed(1), height: Math.max(h, 0.5).toFixed(1), fill: colour(type) });
        rect.dataset.type = type;
        const tip = svg("title");
        tip.textContent = clock(bucket.start).slice(0, 5) + "  " + type + ": " +
          bucket.counts[type];
        rect.append(tip);
        chart.append(rect);
      }
      if (i % 15 === 0 && x + 30 < width) {
        const label = svg("text", { x: x.toFixed(1), y: height - 4 });
        label.textContent = clock(bucket.start).slice(0, 5);
        chart.append(label);
      }
    });
    const list = $("typecounts");
    list.replaceChildren();
    const counts = Object.entries(summary.counts);
    const top1 = counts.length ? counts[0][1] : 1;
    for (const [type, n] of counts) {
      const li = el("li");
      li.dataset.type = type;
      const bar = el("span", "bar");
      bar.style.width = Math.max(2, (n / top1) * 100) + "%";
      bar.style.background = colour(type);
      const name = el("span", "name", type);
      name.title = type;
      li.append(name, el("span", "track"), el("span", "n", n));
      li.children[1].append(bar);
      list.append(li);
    }
    if (!counts.length) list.append(el("li", "empty", "No events in the last hour."));
    $("summary-total").textContent = summary.total + " events";
  }

  let lastSummary = null;
  async function loadSummary() {
    summaryTimer = null;
    try {
      lastSummary = await getJSON("/summary?minutes=60&every=60");
      drawChart(lastSummary);
    } catch (error) {
      $("summary-total").textContent = String(error.message);
    }
  }
  function scheduleSummary() {
    if (summaryTimer === null) summaryTimer = setTimeout(loadSummary, 1500);
  }

  // -- task timeline ----------------------------------------------------------
  let openTask = null;
  function offset(ms) {  // time since the task's first event: +4.250s, +12m 03.000s
    const seconds = ms / 1000;
    if (seconds < 60) return "+" + seconds.toFixed(3) + "s";
    const minutes = Math.floor(seconds / 60);
    return "+" + minutes + "m " + (seconds - minutes * 60).toFixed(3).padStart(6, "0") + "s";
  }
  async function loadTimeline(taskId) {
    openTask = taskId;
    const panel = $("timeline");
    const list = $("timeline-list");
    $("timeline-task").textContent = taskId;
    panel.hidden = false;
    let events;
    try {
      events = await getJSON("/tasks/" + encodeURIComponent(taskId) + "/events");
    } catch (error) {
      list.replaceChildren(el("li", "empty", String(error.message)));
      return;
    }
    if (openTask !== taskId) return;
    list.replaceChildren();
    const t0 = events.length ? Date.parse(events[0].timestamp) : 0;
    for (const ev of events) {
      const li = el("li", "step");
      li.dataset.eventId = ev.id;
      li.style.setProperty("--dot", colour(ev.event_type));
      li.append(el("span", "offset", offset(Date.parse(ev.timestamp) - t0)),
        typeBadge(ev.event_type), " ",
        el("span", "src", ev.source));
      if (ev.agent_id !== null) li.append(" ", el("span", "chip agent", ev.agent_id));
      if (ev.data !== null) li.append(el("pre", null, JSON.stringify(ev.data, null, 2)));
      list.append(li);
    }
    if (!events.length) list.append(el("li", "empty", "No events for this task."));
  }

  function route() {
    const match = /^#task=(.*)$/.exec(location.hash);
    if (match) {
      let taskId;
      try { taskId = decodeURIComponent(match[1]); } catch { return; }
      loadTimeline(taskId).then(() => {
        if (window.matchMedia("(max-width: 800px)").matches) {
          $("timeline").scrollIntoView({ behavior: "smooth" });
        }
      });
    } else {
      openTask = null;
      $("timeline").hidden = true;
    }
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); applyFilters(); });
  $("clear").addEventListener("click", () => { form.reset(); for (const i of form.elements) {
    if (i.tagName === "INPUT") i.value = ""; } applyFilters(); });
  $("timeline-close").addEventListener("click", () => {
    history.replaceState(null, "", location.pathname + location.search);
    route();
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => { if (lastSummary) drawChart(lastSummary); });
  loadFeed();
  loadSummary();
  setInterval(loadSummary, 30000);
  route();
})();

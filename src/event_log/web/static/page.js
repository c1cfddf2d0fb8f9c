"use strict";
(() => {
  const base = document.body.dataset.base;
  const $ = (id) => document.getElementById(id);
  const form = $("filter-form");
  const feed = $("events");
  const olderButton = $("load-older");
  const limit = Number(feed.dataset.limit) || 100;
  // The URL keeps a page size the visitor chose; the default stays out of it.
  const limitParam = new URLSearchParams(location.search).get("limit");
  const seen = new Set();
  let cap = Number(feed.dataset.cap) || 1000;  // grows when older pages are loaded
  let source = null;       // the EventSource of the filter shown
  let lastId = null;       // the newest event listed or received: the stream resumes there
  let applied = null;      // the filter shown (URLSearchParams), null while none is valid
  // Where "Load older" goes on: the listing's next_cursor, or, once live events
  // pushed the oldest out of the list, events up to the oldest one still shown.
  let older = { cursor: feed.dataset.nextCursor || null, until: null };
  let generation = 0;      // each listing's number: an answer to an older one is dropped
  let retryTimer = null;
  let summaryTimer = null;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // -- times: UTC, or the browser's zone, remembered -----------------------------------
  const ZONE_KEY = "event-log.time-zone";
  let zone = "utc";
  try { zone = localStorage.getItem(ZONE_KEY) === "local" ? "local" : "utc"; } catch { /* */ }
  const pad = (n, w) => String(n).padStart(w || 2, "0");
  function offsetName(d) {  // UTC+05:30
    const minutes = -d.getTimezoneOffset();
    const a = Math.abs(minutes);
    return "UTC" + (minutes < 0 ? "-" : "+") + pad(Math.floor(a / 60)) + ":" + pad(a % 60);
  }
  function fields(d) {
    return zone === "local"
      ? [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(),
        d.getSeconds()]
      : [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(),
        d.getUTCMinutes(), d.getUTCSeconds()];
  }
  function stamp(iso) {  // 2026-12-07 20:53:01 UTC, as the server writes it
    const d = new Date(iso);
    const f = fields(d);
    return f[0] + "-" + pad(f[1]) + "-" + pad(f[2]) + " " + pad(f[3]) + ":" + pad(f[4]) + ":" +
      pad(f[5]) + " " + (zone === "local" ? offsetName(d) : "UTC");
  }
  function hhmm(iso) {
    const f = fields(new Date(iso));
    return pad(f[3]) + ":" + pad(f[4]);
  }
  function showTimes(root) {
    for (const time of root.querySelectorAll("time[datetime]")) {
      time.textContent = stamp(time.dateTime);
    }
  }
  // A typed time without a zone is read in the zone shown: "2026-03-01 12:00" in UTC
  // becomes 2026-03-01T12:00:00Z. Anything else goes to the API as typed.
  function zoned(text) {
    const m = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(\.\d+)?)?)?$/.exec(text);
    if (!m) return text;
    const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4] || "00", m[5] || "00", m[6] || "00"];
    const clock = y + "-" + mo + "-" + d + "T" + h + ":" + mi + ":" + s + (m[7] || "");
    if (zone !== "local") return clock + "Z";
    const local = new Date(+y, +mo - 1, +d, +h, +mi, +s);
    return clock + offsetName(local).slice(3);
  }
  // The time one microsecond after an API timestamp, in the API's form.
  function microsecondAfter(iso) {
    const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(iso);
    const micros = BigInt(Date.parse(m[1] + m[3])) * 1000n +
      BigInt((m[2] || "").padEnd(6, "0").slice(0, 6)) + 1n;
    const whole = new Date(Number(micros / 1000n)).toISOString().slice(0, 19);
    return whole + "." + String(micros % 1000000n).padStart(6, "0") + "Z";
  }

  // -- colours and failures ------------------------------------------------------------
  const HUES = { task: 217, agent: 152, bid: 38, auction: 271, tool: 187 };
  function hash(text) {
    let h = 0;
    for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0;
    return Math.abs(h);
  }
  // The same rule as is_failure in _markup.py.
  function isFailure(type) {
    return type.endsWith(".failed") || type === "system.error";
  }
  // A stable colour per event type: a hue per family, a shade per member; red is
  // kept for failures.
  function colour(type) {
    if (isFailure(type)) return "hsl(0 74% " + (44 + (hash(type) % 3) * 6) + "%)";
    if (type === "system.warning") return "hsl(32 90% 50%)";
    const family = type.split(".")[0];
    if (family === "system") return "hsl(215 16% " + (45 + (hash(type) % 3) * 8) + "%)";
    const hue = family in HUES ? HUES[family] : 20 + hash(family) % 320;
    return "hsl(" + hue + " 70% " + (38 + (hash(type) % 4) * 8) + "%)";
  }
  const FAILED_MARK = "\u2716 failed";

  // -- the filter form -----------------------------------------------------------------
  const fieldBox = (name) => form.querySelector('[data-field="' + name + '"]');
  function filterParams() {
    const params = new URLSearchParams();
    for (const box of form.querySelectorAll("[data-field]")) {
      const kind = box.dataset.kind;
      for (const input of box.querySelectorAll("input[name]")) {
        let value = input.value.trim();
        if (!value) continue;
        if (kind === "names") {
          for (const part of value.split(",")) {
            if (part.trim()) params.append(input.name, part.trim());
          }
          continue;
        }
        if (kind === "time") input.value = value = zoned(value);
        params.append(input.name, value);
      }
    }
    return params;
  }
  function setField(name, value) {
    const input = fieldBox(name).querySelector("input");
    input.value = value;
  }
  function addInput(box) {
    const inputs = box.querySelectorAll("input[name]");
    const copy = inputs[inputs.length - 1].cloneNode();
    copy.value = "";
    copy.removeAttribute("aria-invalid");
    inputs[inputs.length - 1].after(copy);
    return copy;
  }
  for (const box of form.querySelectorAll('[data-kind="items"]')) {
    const add = box.querySelector("button.add");
    add.hidden = false;
    add.addEventListener("click", () => addInput(box).focus());
  }
  function showFilterError(message) {
    const error = $("filter-error");
    error.textContent = message;
    error.hidden = false;
    for (const box of form.querySelectorAll("[data-field]")) {
      const name = box.dataset.field;
      const about = message.startsWith(name) && !/\w/.test(message.charAt(name.length));
      for (const input of box.querySelectorAll("input")) {
        if (about) input.setAttribute("aria-invalid", "true");
        else input.removeAttribute("aria-invalid");
      }
      if (about && box.closest("details")) box.closest("details").open = true;
    }
  }
  function clearFilterError() {
    $("filter-error").hidden = true;
    $("filter-error").textContent = "";
    for (const input of form.querySelectorAll("input[aria-invalid]")) {
      input.removeAttribute("aria-invalid");
    }
  }

  // -- the API -------------------------------------------------------------------------
  async function getJSON(path) {
    let response;
    try {
      response = await fetch(base + path, { headers: { Accept: "application/json" } });
    } catch {
      throw Object.assign(new Error("the server is unreachable"), { status: 0 });
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      let detail = response.status + " " + response.statusText;
      if (typeof body.detail === "string") detail = body.detail;
      else if (Array.isArray(body.detail)) {  // FastAPI's request validation (422)
        detail = body.detail.map((d) => (d.loc || []).slice(1).join(".") + ": " + d.msg)
          .join("; ");
      }
      throw Object.assign(new Error(detail), { status: response.status });
    }
    return body;
  }
  const refused = (error) => error.status === 400 || error.status === 422;

  // -- the feed ------------------------------------------------------------------------
  function paint(item) {
    const badge = item.querySelector(".type");
    if (badge) badge.style.borderLeftColor = colour(item.dataset.type);
  }
  function taskHref(taskId) {
    return base + "/?" + new URLSearchParams({ task_id: taskId });
  }
  // The markup of _markup.event_item, built with DOM calls.
  function eventItem(ev, fresh) {
    const failed = isFailure(ev.event_type);
    const li = el("li", "ev" + (failed ? " failed" : "") + (fresh ? " fresh" : ""));
    li.dataset.eventId = ev.id;
    li.dataset.type = ev.event_type;
    const time = el("time", null, stamp(ev.timestamp));
    time.dateTime = ev.timestamp;
    time.title = ev.timestamp;
    li.append(time, el("span", "type", ev.event_type));
    if (failed) li.append(el("span", "fail-mark", FAILED_MARK));
    li.append(el("span", "src", ev.source));
    if (ev.task_id !== null && ev.task_id !== undefined) {
      const a = el("a", "chip task", ev.task_id);
      a.href = taskHref(ev.task_id);
      a.dataset.taskId = ev.task_id;
      a.title = "Show this task's waterfall";
      li.append(a);
    }
    if (ev.agent_id !== null && ev.agent_id !== undefined) {
      const agent = el("button", "chip agent", ev.agent_id);
      agent.type = "button";
      agent.dataset.agentId = ev.agent_id;
      agent.title = "Filter by this agent";
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
    paint(li);
    return li;
  }

  function updateFeed() {
    const n = feed.children.length;
    $("feed-count").textContent = n ? n + " shown" : "";
    $("feed-empty").hidden = n > 0;
    olderButton.hidden = !(older.cursor || older.until);
  }

  function addEvent(ev, live) {
    if (seen.has(ev.id)) return;
    seen.add(ev.id);
    const item = eventItem(ev, live);
    if (live) feed.prepend(item); else feed.append(item);
  }

  // Live events push the oldest out past the cap; "Load older" then lists from the
  // oldest one still shown, so nothing is skipped.
  function trim() {
    if (feed.children.length <= cap) return;
    while (feed.children.length > cap) {
      seen.delete(feed.lastElementChild.dataset.eventId);
      feed.lastElementChild.remove();
    }
    const bottom = feed.lastElementChild.querySelector("time").dateTime;
    older = { cursor: null, until: microsecondAfter(bottom) };
  }

  function setStatus(state, text) {
    const status = $("status");
    status.hidden = false;
    status.dataset.state = state;
    status.textContent = text || state;
  }

  function retry(again) {
    clearTimeout(retryTimer);
    setStatus("offline", "offline, retrying");
    retryTimer = setTimeout(again, 3000);
  }

  function connect() {
    if (source) source.close();
    const params = new URLSearchParams(applied);
    if (lastId) params.set("cursor", lastId);
    setStatus("connecting");
    const stream = new EventSource(base + "/stream?" + params.toString());
    source = stream;
    stream.onopen = () => { if (source === stream) setStatus("live"); };
    stream.onmessage = (message) => {
      const ev = JSON.parse(message.data);
      // The stream's position after this event (commit order): resuming from it
      // misses nothing, not even an event that committed late.
      lastId = message.lastEventId || ev.id;
      addEvent(ev, true);
      trim();
      updateFeed();
      scheduleSummary();
      if (ev.task_id !== null && ev.task_id === openTask) loadTimeline(openTask);
    };
    stream.addEventListener("error", (message) => {
      if (source !== stream) return;
      if (message.data) setStatus("offline", JSON.parse(message.data).detail);
      if (stream.readyState === EventSource.CLOSED) {
        // Refused (a 4xx/5xx answer), so the browser gives up: start over from a
        // fresh listing in a moment, which also drops a cursor gone stale.
        stream.close();
        source = null;
        retry(() => loadFeed(applied, false));
      } else {
        setStatus("connecting", "reconnecting");
      }
    });
  }

  // Lists the first page of `params`; only a filter the API accepts replaces the one
  // shown. A refused filter leaves the feed and its stream as they are.
  async function loadFeed(params, fromForm) {
    clearTimeout(retryTimer);
    retryTimer = null;
    const number = ++generation;
    const listing = new URLSearchParams(params);
    listing.set("limit", String(limit));
    let page, anchor;
    try {
      page = await getJSON("/events?" + listing.toString());
      // The stream starts after the newest stored event, matching or not.
      anchor = page.events.length ? page.events[0].id
        : ((await getJSON("/events?limit=1")).events[0] || { id: null }).id;
    } catch (error) {
      if (number !== generation) return;
      if (refused(error)) {
        showFilterError(error.message);
        if (!source) setStatus("live");  // the server answered: the connection is fine
      } else {
        retry(() => loadFeed(params, fromForm));
      }
      return;
    }
    if (number !== generation) return;
    clearFilterError();
    applied = params;
    if (fromForm) {
      const shown = new URLSearchParams(params);
      if (limitParam) shown.set("limit", limitParam);
      const query = shown.toString();
      history.replaceState(null, "", (query ? "?" + query : location.pathname) + location.hash);
    }
    feed.replaceChildren();
    seen.clear();
    $("feed-empty").textContent = "No matching events yet.";
    for (const ev of page.events) addEvent(ev, false);
    older = { cursor: page.next_cursor, until: null };
    cap = Math.max(Number(feed.dataset.cap) || 1000, limit);
    lastId = anchor;
    updateFeed();
    connect();
    if (!location.hash.startsWith("#task=")) route();
  }

  function applyFilters() {
    loadFeed(filterParams(), true);
  }

  async function loadOlder() {
    if (!applied || !(older.cursor || older.until)) return;
    const number = generation;
    const params = new URLSearchParams(applied);
    params.set("limit", String(limit));
    if (older.until) params.set("until", older.until);
    if (older.cursor) params.set("cursor", older.cursor);
    olderButton.disabled = true;
    $("older-note").textContent = "";
    try {
      const page = await getJSON("/events?" + params.toString());
      if (number !== generation) return;
      for (const ev of page.events) addEvent(ev, false);
      older = { cursor: page.next_cursor, until: page.next_cursor ? older.until : null };
      cap = Math.max(cap, feed.children.length);
      updateFeed();
    } catch (error) {
      $("older-note").textContent = String(error.message);
    } finally {
      olderButton.disabled = false;
    }
  }

  // -- summary chart -------------------------------------------------------------------
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
    chart.append(svg("line", { x1: left, y1: top + plotH, x2: width, y2: top + plotH,
      stroke: "#cbd5e1" }));
    const maxLabel = svg("text", { x: left - 4, y: top + 8, "text-anchor": "end" });
    maxLabel.textContent = String(max);
    const zero = svg("text", { x: left - 4, y: top + plotH, "text-anchor": "end" });
    zero.textContent = "0";
    chart.append(maxLabel, zero);
    buckets.forEach((bucket, i) => {
      const x = left + i * slot;
      let y = top + plotH;
      for (const type of Object.keys(bucket.counts).sort()) {
        const h = (bucket.counts[type] / max) * plotH;
        y -= h;
        const rect = svg("rect", { class: "bar", x: x.toFixed(1), y: y.toFixed(1),
          width: barW.toFixed(1), height: Math.max(h, 0.5).toFixed(1), fill: colour(type) });
        rect.dataset.type = type;
        const tip = svg("title");
        tip.textContent = hhmm(bucket.start) + "  " + type + ": " + bucket.counts[type];
        rect.append(tip);
        chart.append(rect);
      }
      if (i % 15 === 0 && x + 30 < width) {
        const label = svg("text", { x: x.toFixed(1), y: height - 4 });
        label.textContent = hhmm(bucket.start);
        chart.append(label);
      }
    });
    const list = $("typecounts");
    list.replaceChildren();
    const counts = Object.entries(summary.counts);
    const most = counts.length ? counts[0][1] : 1;
    for (const [type, n] of counts) {
      const li = el("li", isFailure(type) ? "failed" : null);
      li.dataset.type = type;
      const bar = el("span", "bar");
      bar.style.width = Math.max(2, (n / most) * 100) + "%";
      bar.style.background = colour(type);
      const name = el("span", "name", type);
      name.title = type;
      const track = el("span", "track");
      track.append(bar);
      li.append(name, track, el("span", "n", n));
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
      if (!source && !retryTimer) setStatus("live");  // no stream to tell: the server answered
    } catch (error) {
      $("summary-total").textContent = String(error.message);
      if (!source && !retryTimer) setStatus("offline", "offline");
    }
  }
  function scheduleSummary() {
    if (summaryTimer === null) summaryTimer = setTimeout(loadSummary, 1500);
  }

  // -- task waterfall ------------------------------------------------------------------
  let openTask = null;
  let taskEvents = [];
  function duration(ms) {  // 850 ms, 1.2 s, 4 m 03 s, 2 h 05 m
    if (ms < 1000) return Math.round(ms) + " ms";
    const s = ms / 1000;
    if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + " s";
    const whole = Math.round(s);
    const m = Math.floor(whole / 60);
    if (m < 60) return m + " m " + pad(whole % 60) + " s";
    return Math.floor(m / 60) + " h " + pad(m % 60) + " m";
  }
  function offset(ms) {  // time since the task's first event: +4.250s, +12m 03.000s
    const seconds = ms / 1000;
    if (seconds < 60) return "+" + seconds.toFixed(3) + "s";
    const minutes = Math.floor(seconds / 60);
    return "+" + minutes + "m " + (seconds - minutes * 60).toFixed(3).padStart(6, "0") + "s";
  }

  // One row per event, its bar from the event to the task's next one: long bars are
  // where the task waited; failed steps are red and marked.
  function drawWaterfall(events) {
    const chart = $("waterfall");
    chart.replaceChildren();
    chart.toggleAttribute("hidden", !events.length);
    if (!events.length) return;
    const width = Math.max(chart.clientWidth || 320, 240);
    const edge = 8, axis = 20, row = 34, charW = 6.3;
    const height = axis + events.length * row + 4;
    chart.setAttribute("viewBox", "0 0 " + width + " " + height);
    chart.setAttribute("height", String(height));
    const times = events.map((ev) => Date.parse(ev.timestamp));
    const t0 = times[0];
    const total = times[times.length - 1] - t0;
    const span = Math.max(total, 1);
    const x = (t) => edge + ((t - t0) / span) * (width - 2 * edge);
    for (let k = 0; k <= 4; k++) {
      const at = edge + (k / 4) * (width - 2 * edge);
      chart.append(svg("line", { class: "grid", x1: at, y1: axis - 4, x2: at, y2: height }));
      const tick = svg("text", { class: "tick", x: at, y: 11,
        "text-anchor": k === 0 ? "start" : k === 4 ? "end" : "middle" });
      tick.textContent = k === 0 ? "0" : "+" + duration((k / 4) * total);
      chart.append(tick);
    }
    events.forEach((ev, i) => {
      const failed = isFailure(ev.event_type);
      const next = events[i + 1];
      const start = x(times[i]);
      const end = next ? x(times[i + 1]) : start;
      const y = axis + i * row;
      const step = svg("g", { class: failed ? "step failed" : "step" });
      step.dataset.eventId = ev.id;
      const bar = svg("rect", { class: "bar", x: start.toFixed(1), y: y + 17,
        width: Math.max(end - start, 3).toFixed(1), height: 10, rx: 2,
        fill: colour(ev.event_type) });
      const took = next ? duration(times[i + 1] - times[i]) : "";
      const text = (failed ? FAILED_MARK.slice(0, 2) : "") + ev.event_type +
        (next ? " \u2192 " + next.event_type + "  " + took : "  end, " + duration(total) +
        " in all");
      const label = svg("text", { class: "label", y: y + 12 });
      label.textContent = text;
      const wide = text.length * charW;
      if (start + wide <= width - edge) label.setAttribute("x", start.toFixed(1));
      else if (end - wide >= edge) {
        label.setAttribute("x", end.toFixed(1));
        label.setAttribute("text-anchor", "end");
      } else label.setAttribute("x", String(edge));
      const tip = svg("title");
      tip.textContent = stamp(ev.timestamp) + "  " + ev.event_type + " from " + ev.source +
        (next ? "\n" + took + " until " + next.event_type : "") + (failed ? "\nfailed" : "");
      step.append(tip, bar, label);
      chart.append(step);
    });
    $("timeline-total").textContent = events.length + " steps, " + duration(total);
  }

  function drawSteps(events) {
    const list = $("timeline-list");
    list.replaceChildren();
    const t0 = events.length ? Date.parse(events[0].timestamp) : 0;
    for (const ev of events) {
      const failed = isFailure(ev.event_type);
      const li = el("li", failed ? "step failed" : "step");
      li.dataset.eventId = ev.id;
      li.style.setProperty("--dot", colour(ev.event_type));
      const badge = el("span", "type", ev.event_type);
      badge.style.borderLeftColor = colour(ev.event_type);
      li.append(el("span", "offset", offset(Date.parse(ev.timestamp) - t0)), badge, " ");
      if (failed) li.append(el("span", "fail-mark", FAILED_MARK), " ");
      li.append(el("span", "src", ev.source));
      if (ev.agent_id !== null) li.append(" ", el("span", "chip agent", ev.agent_id));
      if (ev.data !== null) li.append(el("pre", null, JSON.stringify(ev.data, null, 2)));
      list.append(li);
    }
  }

  async function loadTimeline(taskId) {
    openTask = taskId;
    $("timeline-task").textContent = taskId;
    $("timeline").hidden = false;
    const note = $("timeline-note");
    let events;
    try {
      events = await getJSON("/tasks/" + encodeURIComponent(taskId) + "/events");
    } catch (error) {
      if (openTask !== taskId) return;
      note.textContent = String(error.message);
      note.hidden = false;
      return;
    }
    if (openTask !== taskId) return;
    taskEvents = events;
    note.textContent = "No events for this task.";
    note.hidden = events.length > 0;
    if (!events.length) $("timeline-total").textContent = "";
    drawWaterfall(events);
    drawSteps(events);
  }

  function closeTimeline() {
    openTask = null;
    taskEvents = [];
    $("timeline").hidden = true;
  }

  // #task=ID opens that task; else the filter's task, if it names one.
  function route(scroll) {
    const match = /^#task=(.*)$/.exec(location.hash);
    let taskId = applied ? applied.get("task_id") : null;
    if (match) {
      try { taskId = decodeURIComponent(match[1]); } catch { taskId = null; }
    }
    if (taskId === null) { closeTimeline(); return; }
    loadTimeline(taskId).then(() => {
      if (scroll && window.matchMedia("(max-width: 800px)").matches) {
        $("timeline").scrollIntoView({ behavior: "smooth" });
      }
    });
  }

  function showTask(taskId) {
    const hash = "#task=" + encodeURIComponent(taskId);
    if (location.hash === hash) route(true); else location.hash = hash;
  }

  // -- wiring --------------------------------------------------------------------------
  form.addEventListener("submit", (e) => { e.preventDefault(); applyFilters(); });
  $("clear").addEventListener("click", (e) => {
    e.preventDefault();
    for (const box of form.querySelectorAll('[data-kind="items"]')) {
      const inputs = box.querySelectorAll("input[name]");
      for (let i = 1; i < inputs.length; i++) inputs[i].remove();
    }
    for (const input of form.querySelectorAll("input[name]")) input.value = "";
    applyFilters();
  });
  feed.addEventListener("click", (e) => {
    const agent = e.target.closest("button.agent");
    if (agent) {
      setField("agent_id", agent.dataset.agentId);
      applyFilters();
      return;
    }
    const task = e.target.closest("a.task");
    if (task && e.button === 0 && !(e.ctrlKey || e.metaKey || e.shiftKey || e.altKey)) {
      e.preventDefault();  // the link itself (?task_id=) is for a new tab or no script
      showTask(task.dataset.taskId);
    }
  });
  olderButton.addEventListener("click", loadOlder);
  $("timeline-close").addEventListener("click", () => {
    history.replaceState(null, "", location.pathname + location.search);
    closeTimeline();
  });
  window.addEventListener("hashchange", () => route(true));
  window.addEventListener("resize", () => {
    if (lastSummary) drawChart(lastSummary);
    if (openTask !== null) drawWaterfall(taskEvents);
  });

  const zoneSelect = $("tz");
  const zoneName = Intl.DateTimeFormat().resolvedOptions().timeZone || "this computer";
  zoneSelect.querySelector('option[value="local"]').textContent =
    "Local (" + zoneName + ", " + offsetName(new Date()) + ")";
  zoneSelect.value = zone;
  $("tz-wrap").hidden = false;
  zoneSelect.addEventListener("change", () => {
    zone = zoneSelect.value === "local" ? "local" : "utc";
    try { localStorage.setItem(ZONE_KEY, zone); } catch { /* private mode: not remembered */ }
    showTimes(document);
    if (lastSummary) drawChart(lastSummary);
    if (openTask !== null) drawWaterfall(taskEvents);
  });

  // Take over the list the server rendered.
  for (const item of feed.children) {
    seen.add(item.dataset.eventId);
    paint(item);
  }
  if (zone !== "utc") showTimes(feed);
  updateFeed();
  const state = feed.dataset.state;
  if (state === "ok") {
    applied = filterParams();
    lastId = feed.dataset.anchor || null;
    connect();
  } else if (state === "unavailable") {
    applied = filterParams();
    retry(() => loadFeed(applied, false));
  }  // "invalid": the server says why next to the filters; nothing to follow yet
  loadSummary();
  setInterval(loadSummary, 30000);
  route(true);
})();

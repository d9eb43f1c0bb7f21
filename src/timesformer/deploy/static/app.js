"use strict";
// The page talks to the service's own JSON API; nothing is fetched from anywhere else.
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#3367d6", "#e8710a", "#1e8e3e", "#d93025", "#9334e6", "#12b5cb", "#f9ab00", "#5f6368"];

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function el(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function drawBars(topk) {
  const svg = $("bars");
  svg.innerHTML = "";
  const rowH = 24, labelW = 200, width = 700;
  svg.setAttribute("viewBox", `0 0 ${width} ${rowH * topk.length + 4}`);
  topk.forEach((t, i) => {
    const y = i * rowH + 2;
    const w = Math.max(1, (width - labelW - 60) * t.prob);
    svg.appendChild(el("text", { x: labelW - 6, y: y + 16, "text-anchor": "end" }, t.label));
    svg.appendChild(el("rect", { x: labelW, y: y + 3, width: w, height: rowH - 8, fill: COLOURS[0], "data-label": t.label }));
    svg.appendChild(el("text", { x: labelW + w + 6, y: y + 16 }, (100 * t.prob).toFixed(1) + "%"));
  });
}

function drawTimeline(record) {
  const clips = record.clips || [];
  const box = $("timeline-box");
  box.hidden = clips.length === 0;
  if (!clips.length) return;
  const svg = $("timeline");
  svg.innerHTML = "";
  const width = 700, height = 40, total = record.duration || clips[clips.length - 1].end;
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 18}`);
  const names = [...new Set(clips.map((c) => c.label))];
  for (const c of clips) {
    const x = (width * c.start) / total, w = Math.max(1, (width * (c.end - c.start)) / total);
    const r = el("rect", { x, y: 0, width: w, height, fill: COLOURS[names.indexOf(c.label) % COLOURS.length], opacity: 0.35 + 0.65 * c.prob });
    r.appendChild(el("title", {}, `${c.start.toFixed(1)}-${c.end.toFixed(1)} s: ${c.label} (${(100 * c.prob).toFixed(0)}%)`));
    svg.appendChild(r);
  }
  svg.appendChild(el("text", { x: 0, y: height + 14 }, "0 s"));
  svg.appendChild(el("text", { x: width, y: height + 14, "text-anchor": "end" }, total.toFixed(1) + " s"));
  const list = $("segments");
  list.innerHTML = "";
  for (const s of record.segments || []) {
    const li = document.createElement("li");
    li.textContent = `${s.start.toFixed(1)}–${s.end.toFixed(1)} s: ${s.label} (${(100 * s.score).toFixed(0)}%)`;
    list.appendChild(li);
  }
}

function drawMaps(result) {
  const box = $("maps-box"), maps = $("maps");
  maps.innerHTML = "";
  box.hidden = false;
  $("maps-label").textContent = result.label;
  result.frames.forEach((src, i) => {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = src;
    img.alt = `frame ${i}`;
    const cap = document.createElement("figcaption");
    cap.textContent = `${result.frame_times[i].toFixed(2)} s · ${(100 * result.frame_relevance[i]).toFixed(0)}%`;
    fig.append(img, cap);
    maps.appendChild(fig);
  });
}

async function post(path, file, fields) {
  const form = new FormData();
  form.append("file", file);
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const response = await fetch(path, { method: "POST", body: form });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

async function classify(file) {
  if (!file) return;
  $("result").hidden = true;
  $("maps-box").hidden = true;
  status(`classifying ${file.name}…`);
  try {
    const record = await post("/v1/predict", file, { topk: $("topk").value, long: $("long").checked });
    $("label").textContent = record.label;
    $("prob").textContent = `${(100 * record.prob).toFixed(1)}%`;
    drawBars(record.topk);
    drawTimeline(record);
    $("result").hidden = false;
    status(`${file.name}: ${record.num_clips} clips, ${record.duration.toFixed(1)} s of video`);
    if ($("explain").checked) {
      status("computing attention maps…");
      drawMaps(await post("/v1/explain", file, {}));
      status(`${file.name}: done`);
    }
  } catch (e) {
    status(`${file.name}: ${e.message}`, true);
  }
}

$("file").addEventListener("change", (e) => classify(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  classify(e.dataTransfer.files[0]);
});

fetch("/v1/model")
  .then((r) => r.json())
  .then((m) => {
    const p = m.preprocess || {};
    const classes = m.config.num_classes ? `${m.class_names.length} classes`
      : "no classification head: it cannot classify (POST /v1/extract gives its features)";
    $("model-line").textContent = `${m.config.attention_type}, ${p.num_frames} frames every ${p.sampling_rate}, ` +
      `${p.crop_size} px, ${classes}`;
  })
  .catch(() => { $("model-line").textContent = "model description unavailable"; });

"use strict";
// The studio's pages. Every number shown comes from the server's API, which calls the same library
// functions as the mww-* commands; nothing is computed here but the drawing.

const COLORS = ["#4a86e8", "#e8804a", "#3aa655", "#a05ad8", "#d84a6b", "#7a8599"];

// ------------------------------------------------------------------------------------------ helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Replaces the children of `node` (null and undefined children are left out).
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

// A path inside the project, relative to it (the project's folder is shown in the header).
let PROJECT = "";
function rel(path) { return PROJECT && path.startsWith(PROJECT + "/") ? path.slice(PROJECT.length + 1) : path; }

function section(title, id, ...children) {
  return el("section", { id }, el("h2", { text: title }), ...children);
}

function showMessage(text, kind) {
  const box = document.getElementById("message");
  box.textContent = text || "";
  box.className = "message " + (kind || "error");
  box.hidden = !text;
}

async function api(method, url, body, raw) {
  const options = { method, headers: { "X-Mww-Studio": "1" } };
  if (raw !== undefined) options.body = raw;
  else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, options);
  const data = await response.json().catch(() => ({ error: `mww-studio: error: ${response.status} from ${url}` }));
  if (!response.ok) throw new Error(data.error || `mww-studio: error: ${response.status}`);
  return data;
}

// A long action: start it, then ask for its outcome until it is there.
async function runJob(method, url, body, raw, onWait) {
  let job = await api(method, url, body, raw);
  while (job.state === "running") {
    if (onWait) onWait(job);
    await new Promise((resolve) => setTimeout(resolve, 500));
    job = await api("GET", `/api/jobs/${job.id}`);
  }
  if (job.state === "failed") throw new Error(job.error);
  return job.result;
}

// Runs an action of a button: disables it meanwhile, shows the error paragraph when it fails.
async function act(button, action, busyText) {
  showMessage("");
  const label = button.textContent;
  button.disabled = true;
  if (busyText) button.textContent = busyText;
  try {
    return await action();
  } catch (error) {
    showMessage(error.message, "error");
    return undefined;
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

function pct(value) { return value === null || value === undefined ? "–" : (100 * value).toFixed(1) + " %"; }
function num(value, digits) { return value === null || value === undefined ? "–" : Number(value).toFixed(digits); }
function fah(value) { return value === null || value === undefined ? "∞" : Number(value).toFixed(2); }

function table(headers, rows, id) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows.map((row) => el("tr", {}, row.map((cell) => el("td", {}, cell))))));
}

function field(label, input) { return el("label", {}, label, input); }

function select(id, options, chosen) {
  return el("select", { id }, options.map(([value, text]) =>
    el("option", { value, selected: String(value) === String(chosen) }, text)));
}

// ------------------------------------------------------------------------------------------ charts

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}

function symlog(x) { return Math.sign(x) * Math.log10(1 + Math.abs(x) / 0.1); }

// A line chart: series [{label, points: [[x, y]], color}], optional vertical lines and a marker.
function lineChart(id, spec) {
  const W = spec.width || 460, H = spec.height || 230, L = 48, R = 18, T = 22, B = 34;
  const all = spec.series.flatMap((s) => s.points).filter((p) => p[1] !== null && p[0] !== null);
  const fx = spec.xLog ? symlog : (x) => x;
  const xs = all.map((p) => fx(p[0])), ys = all.map((p) => p[1]);
  let [x0, x1] = spec.xRange || [Math.min(...xs, 0), Math.max(...xs, 1e-9)];
  if (spec.xRange && spec.xLog) [x0, x1] = [fx(x0), fx(x1)];
  let [y0, y1] = spec.yRange || [Math.min(...ys, 0), Math.max(...ys, 1e-9)];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) y1 = y0 + 1;
  const px = (x) => L + ((fx(x) - x0) / (x1 - x0)) * (W - L - R);
  const py = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const chart = svg("svg", { id, class: "chart", viewBox: `0 0 ${W} ${H}` });
  chart.append(svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "none", stroke: "#ccd" }));
  const ticks = (a, b) => [0, 0.25, 0.5, 0.75, 1].map((f) => a + f * (b - a));
  for (const v of ticks(y0, y1)) {
    chart.append(svg("text", { x: L - 4, y: py(v) + 4, "text-anchor": "end" }, document.createTextNode(v.toPrecision(3))));
  }
  for (const v of ticks(x0, x1)) {
    const raw = spec.xLog ? Math.sign(v) * 0.1 * (10 ** Math.abs(v) - 1) : v;
    chart.append(svg("text", { x: L + ((v - x0) / (x1 - x0)) * (W - L - R), y: H - B + 14, "text-anchor": "middle" },
      document.createTextNode(Number(raw.toPrecision(2)).toString())));
  }
  chart.append(svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, document.createTextNode(spec.xLabel || "")));
  chart.append(svg("text", { x: L, y: 12 }, document.createTextNode(spec.yLabel || "")));
  for (const line of spec.vlines || []) {
    chart.append(svg("line", { x1: px(line.x), x2: px(line.x), y1: T, y2: H - B, stroke: line.color || "#888", "stroke-dasharray": "4 3" }));
  }
  for (const line of spec.hlines || []) {
    chart.append(svg("line", { x1: L, x2: W - R, y1: py(line.y), y2: py(line.y), stroke: line.color || "#888", "stroke-dasharray": "4 3" }));
  }
  spec.series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    const points = s.points.filter((p) => p[1] !== null && p[0] !== null);
    if (points.length > 1) {
      chart.append(svg("polyline", { class: "series", fill: "none", stroke: color, "stroke-width": 1.6,
        points: points.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(" ") }));
    }
    if (s.dots || points.length === 1) {
      for (const p of points) chart.append(svg("circle", { class: "dot", cx: px(p[0]), cy: py(p[1]), r: 3, fill: color }));
    }
  });
  for (const m of spec.markers || []) {
    if (m.x === null || m.y === null) continue;
    chart.append(svg("circle", { class: "marker", cx: px(m.x), cy: py(m.y), r: 6, fill: "none", stroke: m.color || "#000", "stroke-width": 2 }));
  }
  const legend = el("div", { class: "legend" }, spec.series.map((s, i) =>
    el("span", {}, el("i", { style: `background:${s.color || COLORS[i % COLORS.length]}` }), s.label)));
  return el("div", {}, chart, spec.series.length > 1 ? legend : null);
}

// Bars of several groups of values in [0, 1] (the score histogram), with a cutoff line.
function histogram(id, groups, cutoff) {
  const W = 460, H = 200, L = 40, R = 10, T = 10, B = 30, BINS = 40;
  const counts = groups.map((g) => {
    const c = new Array(BINS).fill(0);
    for (const v of g.values) c[Math.min(BINS - 1, Math.floor(v * BINS))] += 1;
    return c;
  });
  const top = Math.max(1, ...counts.flat());
  const chart = svg("svg", { id, class: "chart", viewBox: `0 0 ${W} ${H}` });
  const bw = (W - L - R) / BINS;
  groups.forEach((g, gi) => counts[gi].forEach((n, b) => {
    if (!n) return;
    const h = (n / top) * (H - T - B);
    chart.append(svg("rect", { class: "bar", x: L + b * bw, y: H - B - h, width: bw - 1, height: h, fill: COLORS[gi], "fill-opacity": 0.55 }));
  }));
  chart.append(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#99a" }));
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(svg("text", { x: L + v * (W - L - R), y: H - B + 14, "text-anchor": "middle" }, document.createTextNode(String(v))));
  }
  chart.append(svg("text", { x: 4, y: T + 8 }, document.createTextNode(String(top))));
  chart.append(svg("text", { x: (L + W) / 2, y: H - 3, "text-anchor": "middle" }, document.createTextNode("highest window mean per clip")));
  if (cutoff !== undefined) {
    const x = L + cutoff * (W - L - R);
    chart.append(svg("line", { id: `${id}-cutoff`, x1: x, x2: x, y1: T, y2: H - B, stroke: "#000", "stroke-dasharray": "4 3" }));
  }
  const legend = el("div", { class: "legend" }, groups.map((g, i) =>
    el("span", {}, el("i", { style: `background:${COLORS[i]}` }), `${g.label} (${g.values.length})`)));
  return el("div", {}, chart, legend);
}

// ------------------------------------------------------------------------------------------ recording

// Records one take from the microphone (MediaRecorder), decodes it in the browser and hands a WAV
// at the browser's sample rate to `done`; the server converts it to 16 kHz mono 16-bit.
function recorder(startButton, stopButton, status, done) {
  let media = null, chunks = [], started = 0, timer = null;
  startButton.addEventListener("click", async () => {
    showMessage("");
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      media = new MediaRecorder(stream);
      chunks = [];
      media.ondataavailable = (e) => chunks.push(e.data);
      media.onstop = async () => {
        clearInterval(timer);
        stream.getTracks().forEach((t) => t.stop());
        status.textContent = "converting…";
        try {
          const blob = new Blob(chunks, { type: media.mimeType });
          await done(await toWav(await blob.arrayBuffer()));
          status.textContent = "saved";
        } catch (error) {
          status.textContent = "";
          showMessage(error.message, "error");
        }
        startButton.disabled = false;
        stopButton.disabled = true;
      };
      media.start();
      started = Date.now();
      timer = setInterval(() => { status.textContent = `recording ${((Date.now() - started) / 1000).toFixed(1)} s`; }, 100);
      startButton.disabled = true;
      stopButton.disabled = false;
    } catch (error) {
      showMessage(`mww-studio: error: the microphone could not be opened (${error.message}). Allow the page to use it, or upload a recording instead.`, "error");
    }
  });
  stopButton.addEventListener("click", () => { if (media && media.state === "recording") media.stop(); });
  stopButton.disabled = true;
}

async function toWav(encoded) {
  const context = new AudioContext();
  const audio = await context.decodeAudioData(encoded);
  context.close();
  const n = audio.length, rate = audio.sampleRate, mono = new Float32Array(n);
  for (let c = 0; c < audio.numberOfChannels; c++) {
    const data = audio.getChannelData(c);
    for (let i = 0; i < n; i++) mono[i] += data[i] / audio.numberOfChannels;
  }
  const buffer = new ArrayBuffer(44 + 2 * n), view = new DataView(buffer);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * n, true); text(8, "WAVE"); text(12, "fmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * n, true);
  for (let i = 0; i < n; i++) view.setInt16(44 + 2 * i, Math.max(-32768, Math.min(32767, Math.round(mono[i] * 32767))), true);
  return new Uint8Array(buffer);
}

// ------------------------------------------------------------------------------------------ Dataset

const KIND_LABELS = { positive: "wake word (positive)", negative: "negative", hard_negative: "hard negative",
  background: "background noise", rir: "room impulse responses", ambient: "ambient recordings", false_wake: "false wakes" };

async function datasetPage(page) {
  const counts = el("div", { id: "dataset-counts" });
  const clips = el("div", { id: "clip-list", class: "clips" });
  const clipKind = select("clip-kind", Object.entries(KIND_LABELS), "positive");
  const clipSpeaker = el("select", { id: "clip-speaker" });
  const report = el("div", { id: "ingest-report" });
  const prepareOut = el("pre", { id: "prepare-output", hidden: true });
  const generateOut = el("pre", { id: "generate-output", hidden: true });
  const uploadKind = select("upload-kind", Object.entries(KIND_LABELS), "positive");
  const speaker = el("input", { type: "text", id: "speaker", placeholder: "e.g. alice" });
  const files = el("input", { type: "file", id: "upload-files", multiple: true, accept: "audio/*,.wav,.flac,.ogg,.mp3" });
  const uploadButton = el("button", { id: "upload-button" }, "Upload");
  const recordButton = el("button", { id: "record-start" }, "Record a take");
  const stopButton = el("button", { id: "record-stop", class: "secondary" }, "Stop");
  const recordStatus = el("span", { id: "record-status", class: "muted" });
  const prepareButton = el("button", { id: "prepare-button" }, "Check the dataset");
  const gen = {
    wake: el("input", { type: "text", id: "gen-wake-word", value: "hey computer" }),
    size: select("gen-size", [["small", "small"], ["medium", "medium"]], "small"),
    seed: el("input", { type: "number", id: "gen-seed", value: "0", min: "0" }),
    force: el("input", { type: "checkbox", id: "gen-force" }),
    reuse: el("input", { type: "checkbox", id: "gen-reuse" }),
    tts: select("gen-tts", [["", "espeak (or piper with voices)"], ["espeak", "espeak"], ["piper", "piper"], ["espeak,piper", "espeak and piper"]], ""),
    voices: el("textarea", { id: "gen-piper-voices", rows: 2, cols: 50, placeholder: "Piper voices: one /path/to/voice.onnx a line (its .onnx.json beside it)" }),
  };
  const generateButton = el("button", { id: "generate-button" }, "Generate");

  async function refresh() {
    const data = await api("GET", "/api/dataset");
    const held = new Set(data.test_speakers), val = new Set(data.validation_speakers);
    fill(counts, 
      table(["folder", "files", "path"], data.folders.map((f) => [KIND_LABELS[f.kind] || f.kind, f.files, el("span", { class: "muted", text: rel(f.folder) })]), "folder-counts"),
      el("h3", { text: `Speakers (${data.speakers.length})` }),
      el("div", { class: "scroll" }, table(["speaker", "wake word clips", "split"], data.speakers.map((s) => [s.speaker, s.files,
        s.split || (held.has(s.speaker) ? "test (held out)" : val.has(s.speaker) ? "validation" : "not checked yet")]), "speaker-counts")));
    const chosen = clipSpeaker.value;
    fill(clipSpeaker, el("option", { value: "" }, "all speakers"),
      ...data.speakers.map((s) => el("option", { value: s.speaker, selected: s.speaker === chosen }, s.speaker)));
    showReport(data);
    await listClips(0);
  }

  function showReport(data) {
    if (!data.report) { fill(report, el("p", { class: "muted", text: "The dataset has not been checked yet." })); return; }
    fill(report, 
      el("p", {}, `${data.skipped.length} file(s) skipped at the last check`, el("span", { class: "muted", text: ` (${rel(data.report)})` })),
      data.skipped.length ? table(["folder", "reason", "file", "detail"], data.skipped.map((s) => [s.kind, s.reason, rel(s.path), s.detail]), "skipped-files") : null);
  }

  async function listClips(offset) {
    const kind = clipKind.value, who = kind === "positive" ? clipSpeaker.value : "";
    clipSpeaker.hidden = kind !== "positive";
    const data = await api("GET", `/api/clips?kind=${kind}&speaker=${encodeURIComponent(who)}&offset=${offset}`);
    const rows = data.clips.map((c) => [c.name, el("audio", { controls: true, preload: "none", src: `/api/audio?path=${encodeURIComponent(c.path)}` })]);
    const more = data.total > offset + data.clips.length
      ? el("button", { class: "secondary", onclick: () => listClips(offset + data.clips.length) }, "next page") : null;
    fill(clips, el("p", { class: "muted", text: `${data.total} clip(s); ${offset + 1}–${offset + data.clips.length} shown` }),
      table(["file", "listen"], rows, "clips-table"), more);
  }

  clipKind.addEventListener("change", () => listClips(0));
  clipSpeaker.addEventListener("change", () => listClips(0));
  uploadButton.addEventListener("click", () => act(uploadButton, async () => {
    const chosen = [...files.files];
    if (!chosen.length) throw new Error("mww-studio: error: choose one or more audio files first.");
    for (const [i, file] of chosen.entries()) {
      uploadButton.textContent = `Uploading ${i + 1}/${chosen.length}…`;
      const query = `kind=${uploadKind.value}&speaker=${encodeURIComponent(speaker.value)}&name=${encodeURIComponent(file.name)}`;
      await api("PUT", `/api/upload?${query}`, undefined, file);
    }
    files.value = "";
    showMessage(`Uploaded ${chosen.length} file(s), stored as 16 kHz mono 16-bit WAV.`, "info");
    await refresh();
  }));
  recorder(recordButton, stopButton, recordStatus, async (wav) => {
    const saved = await api("PUT", `/api/record?speaker=${encodeURIComponent(speaker.value)}`, undefined, wav);
    showMessage(`Saved ${saved.saved}`, "info");
    await refresh();
  });
  prepareButton.addEventListener("click", () => act(prepareButton, async () => {
    const result = await runJob("POST", "/api/prepare", {});
    prepareOut.hidden = false;
    prepareOut.textContent = result.lines.join("\n");
    showReport(result);
  }, "Checking…"));
  generateButton.addEventListener("click", () => act(generateButton, async () => {
    const body = { wake_word: gen.wake.value, size: gen.size.value, seed: gen.seed.value, force: gen.force.checked,
      reuse: gen.reuse.checked, tts: gen.tts.value, piper_voices: gen.voices.value };
    const result = await runJob("POST", "/api/generate", body, undefined,
      (job) => { generateButton.textContent = `Generating… ${Math.round(job.elapsed_s)} s`; });
    generateOut.hidden = false;
    generateOut.textContent = result.join("\n");
    await refresh();
  }, "Generating…"));

  page.append(
    section("Folders and speakers", "counts-section", counts),
    section("Clips", "clips-section", el("div", {}, clipKind, " ", clipSpeaker), clips),
    section("Add recordings", "add-section",
      el("div", {}, field("folder", uploadKind), field("speaker", speaker)),
      el("h3", { text: "Upload audio files" }), el("div", {}, files, uploadButton),
      el("h3", { text: "Record in the browser (one wake word per take, into positive/<speaker>/)" }),
      el("div", {}, recordButton, stopButton, recordStatus),
      el("p", { class: "muted", text: "Uploads and takes are stored as 16 kHz mono 16-bit WAV, what the device hears." })),
    section("Check the dataset (mww-prepare)", "prepare-section",
      el("p", { class: "muted", text: "Finds every file, skips the unusable ones (with the reason), makes the speaker-disjoint splits and caches the features." }),
      prepareButton, prepareOut, report),
    section("Generate a demo dataset (mww-generate)", "generate-section",
      el("div", {}, field("wake word", gen.wake), field("size", gen.size), field("seed", gen.seed)),
      el("div", {}, field("replace a dataset already there (--force)", gen.force), field("keep one already made (--reuse)", gen.reuse)),
      el("div", {}, field("speech (--tts)", gen.tts)), el("div", {}, gen.voices),
      generateButton, generateOut));
  await refresh();
}

// ------------------------------------------------------------------------------------------ Train

async function trainPage(page) {
  const s = await api("GET", "/api/settings");
  const form = {
    preset: select("preset", s.presets.map((p) => [p, p]), s.preset || ""),
    wake_word: el("input", { type: "text", id: "wake-word", value: s.wake_word }),
    training_steps: el("input", { type: "text", id: "training-steps", value: s.training_steps.join(", ") }),
    batch_size: el("input", { type: "number", id: "batch-size", value: s.batch_size, min: "1" }),
    augmentation: el("input", { type: "checkbox", id: "augmentation", checked: s.augmentation }),
  };
  let dirty = false;
  Object.values(form).forEach((input) => input.addEventListener("change", () => { dirty = true; }));
  const save = el("button", { id: "save-settings", class: "secondary" }, "Save");
  const start = el("button", { id: "train-start" }, "Start");
  const stop = el("button", { id: "train-stop", class: "secondary" }, "Stop");
  const resume = el("button", { id: "train-resume", class: "secondary" }, "Resume");
  const badge = el("span", { id: "train-state", class: "badge" }, "…");
  const bar = el("progress", { id: "train-progress", max: "1", value: "0" });
  const progressText = el("div", { id: "train-progress-text", class: "muted" });
  const runMessage = el("div", { id: "train-message" });
  const plots = el("div", { id: "train-plots" });
  const validation = el("div", { id: "validation-table" });
  const consoleOut = el("pre", { id: "train-console" });

  async function saveSettings() {
    const body = Object.fromEntries(Object.entries(form).map(([k, input]) => [k, input.type === "checkbox" ? input.checked : input.value]));
    await api("POST", "/api/settings", body);
    dirty = false;
  }
  save.addEventListener("click", () => act(save, async () => { await saveSettings(); showMessage(`Saved ${s.config_file}`, "info"); }));
  start.addEventListener("click", () => act(start, async () => {
    if (dirty) await saveSettings();
    await api("POST", "/api/train/start", { resume: false });
    await poll();
  }));
  resume.addEventListener("click", () => act(resume, async () => {
    if (dirty) await saveSettings();
    await api("POST", "/api/train/start", { resume: true });
    await poll();
  }));
  stop.addEventListener("click", () => act(stop, async () => { await api("POST", "/api/train/stop", {}); await poll(); }));

  function drawPlots(status) {
    const v = status.validations;
    fill(plots, 
      el("h3", { text: "Loss" }),
      lineChart("plot-loss", { series: [{ label: "training loss", points: status.losses }], xLabel: "step", yLabel: "loss" }),
      el("h3", { text: "Recall at each validation" }),
      lineChart("plot-recall", { series: [
        { label: "recall at the operating point (device detector)", points: v.map((r) => [r.step, r.operating_point_recall]), dots: true },
        { label: "clip-level recall", points: v.map((r) => [r.step, r.recall]), dots: true }],
      xLabel: "step", yRange: [0, 1] }),
      el("h3", { text: "False activations per hour at each validation" }),
      lineChart("plot-fah", { series: [
        { label: "FA/h at the config's cutoff (ambient + negatives)", points: v.map((r) => [r.step, r.ambient_false_positives_per_hour]), dots: true },
        { label: "FA/h at the operating point", points: v.map((r) => [r.step, r.operating_point_fah]), dots: true }],
      xLabel: "step" }));
  }

  function drawValidation(status) {
    const v = status.validations;
    if (!v.length) { fill(validation, el("p", { class: "muted", text: "No validation yet." })); return; }
    const last = v[v.length - 1];
    fill(validation, 
      el("p", {}, `Validation at step ${last.step}` + (status.best ? `; best checkpoint so far: step ${status.best.step}` : "")),
      table(["metric", "value"], status.table_keys.map(([key, label]) => [label, num(last[key], 4)]), "validation-latest"),
      el("p", { class: "muted", text: `operating point: cutoff ${num(last.operating_point_cutoff, 3)}, window ${last.operating_point_window}, recall ${pct(last.operating_point_recall)}, ${fah(last.operating_point_fah)} FA/h` }),
      el("h3", { text: "Every validation" }),
      table(["step", "recall (operating point)", "FA/h (operating point)", "FA/h (config cutoff)"],
        v.map((r) => [r.step, pct(r.operating_point_recall), fah(r.operating_point_fah), fah(r.ambient_false_positives_per_hour)]), "validation-history"));
  }

  async function poll() {
    const status = await api("GET", "/api/train/status");
    badge.textContent = status.state;
    badge.className = `badge ${status.state}`;
    const running = status.state === "running";
    stop.disabled = !running;
    resume.disabled = running || !status.resumable;
    const p = status.progress;
    if (p) {
      bar.value = p.step / p.total;
      const eta = running ? `, done at about ${etaClock(p.remaining)}` : "";
      progressText.textContent = `phase ${p.phase} · step ${p.step}/${p.total} · ${p.percent.toFixed(1)} % · ${p.elapsed} elapsed · ${p.remaining} remaining${eta} · loss ${p.loss}`;
    } else {
      bar.value = 0;
      progressText.textContent = running ? "starting: loading TensorFlow and preparing the data…" : "";
    }
    fill(runMessage, 
      status.run ? el("p", { class: "muted", text: `${status.run.command} (process ${status.run.pid})` }) : null,
      status.message ? el("p", { class: status.state === "failed" ? "message error" : "message info", text: status.message }) : null);
    drawPlots(status);
    drawValidation(status);
    consoleOut.textContent = (status.console || []).join("\n");
  }

  page.append(
    section("Settings (project.yaml)", "settings-section",
      el("div", {}, field("preset", form.preset), field("wake word", form.wake_word)),
      el("div", {}, field("steps per phase", form.training_steps), field("batch", form.batch_size), field("augmentation", form.augmentation)),
      save, el("p", { class: "muted", text: `Other keys: edit ${s.config_file}; every key is kept.` })),
    section("Run (mww-train)", "run-section", el("div", {}, start, stop, resume, " ", badge), bar, progressText, runMessage,
      el("p", { class: "muted", text: "Training runs in the background: closing this tab does not stop it." })),
    el("section", { id: "plots-section" }, el("h2", { text: "Progress" }), plots),
    section("Validation", "validation-section", validation),
    el("section", { class: "wide", id: "console-section" }, el("h2", { text: "Output" }), consoleOut));
  await poll();
  setInterval(() => poll().catch((error) => showMessage(error.message, "error")), 1000);
}

function etaClock(remaining) {
  const [h, m, s] = remaining.split(":").map(Number);
  return new Date(Date.now() + 1000 * (3600 * h + 60 * m + s)).toLocaleTimeString();
}

// ------------------------------------------------------------------------------------------ Evaluate

async function evaluatePage(page) {
  const models = await api("GET", "/api/models");
  const options = [...models.checkpoints.map((n) => [`checkpoint:${n}`, `checkpoint ${n}`]),
    ...models.exported.map((n) => [`tflite:${n}`, `exported ${n}`])];
  const model = select("eval-model", options, options.length ? options[0][0] : "");
  const split = select("eval-split", [["val", "validation"], ["test", "test"], ["train", "train"]], "val");
  const run = el("button", { id: "eval-run" }, "Evaluate");
  const results = el("div", { id: "eval-results", class: "wide" });

  async function load() {
    const data = await api("GET", `/api/evaluation?split=${split.value}`);
    fill(results);
    if (data.evaluation) showEvaluation(results, data.evaluation);
    else results.append(el("section", {}, el("p", { class: "muted", text: `No evaluation of the ${split.value} split yet.` })));
  }
  split.addEventListener("change", () => load().catch((error) => showMessage(error.message)));
  run.addEventListener("click", () => act(run, async () => {
    const result = await runJob("POST", "/api/evaluate", { model: model.value, split: split.value }, undefined,
      (job) => { run.textContent = `Evaluating… ${Math.round(job.elapsed_s)} s`; });
    fill(results);
    showEvaluation(results, result);
  }, "Evaluating…"));
  page.append(section("Evaluate (mww-evaluate)", "eval-section",
    el("div", {}, field("model", model), field("split", split), run),
    el("p", { class: "muted", text: "Measured the way the device runs: its front end, its detector, FA/h over the real duration of the audio. Choose the cutoff on the validation split." })),
  results);
  results.style.display = "contents";
  await load();
}

function showEvaluation(root, ev) {
  const sweep = ev.sweep, cutoffs = sweep.cutoffs;
  const inner = cutoffs.map((c, i) => i).filter((i) => cutoffs[i] > 0 && cutoffs[i] < 1);
  const windows = Object.keys(sweep.windows).map(Number).sort((a, b) => a - b);
  const rec = ev.recommended, at = ev.at_settings;
  const pickWindow = select("pick-window", windows.map((w) => [w, `window ${w}`]), rec.sliding_window_size);
  const nearest = (c) => inner.reduce((best, i) => (Math.abs(cutoffs[i] - c) < Math.abs(cutoffs[best] - c) ? i : best), inner[0]);
  const slider = el("input", { type: "range", id: "pick-cutoff", min: 0, max: inner.length - 1, step: 1,
    value: inner.indexOf(nearest(rec.probability_cutoff)), style: "width: 100%" });
  const readout = el("div", { id: "pick-readout", class: "readout" });
  const use = el("button", { id: "pick-use" }, "Use for export");
  const det = el("div", { id: "det-holder" }), hist = el("div", { id: "hist-holder" });

  function picked() {
    const i = inner[Number(slider.value)], w = sweep.windows[pickWindow.value];
    return { cutoff: cutoffs[i], window: Number(pickWindow.value), recall: w.recall[i], fah: w.fah[i] };
  }
  function draw() {
    const p = picked();
    readout.textContent = `cutoff ${p.cutoff.toFixed(3)}, window ${p.window}: recall ${pct(p.recall)}, ${fah(p.fah)} FA/h (ESP32 detector)`;
    const shown = [...new Set([1, 5, 10, p.window, rec.sliding_window_size])].filter((w) => sweep.windows[w]).sort((a, b) => a - b);
    fill(det, lineChart("det-curve", {
      series: shown.map((w) => ({ label: `window ${w}`, points: inner.map((i) => [sweep.windows[w].fah[i], sweep.windows[w].false_rejection_rate[i]]) })),
      xLog: true, xLabel: "false activations per hour", yLabel: "false rejection rate", yRange: [0, 1],
      vlines: [{ x: rec.target_fah, color: "#999" }],
      markers: [{ x: p.fah, y: p.recall === null ? null : 1 - p.recall }, { x: rec.fah, y: 1 - rec.recall, color: "#3aa655" }] }));
    fill(hist, histogram("score-histogram", [
      { label: "positives", values: ev.peaks.positive || [] },
      { label: "negatives", values: ev.peaks.negative || [] },
      { label: "hard negatives", values: ev.peaks.hard_negative || [] }], p.cutoff));
  }
  slider.addEventListener("input", draw);
  pickWindow.addEventListener("change", draw);
  use.addEventListener("click", () => act(use, async () => {
    const p = picked();
    await api("POST", "/api/choice", { cutoff: p.cutoff, window: p.window });
    showMessage(`The Export page will use cutoff ${p.cutoff.toFixed(3)} and window ${p.window}.`, "info");
  }));
  draw();

  const src = ev.per_source;
  const perSet = [
    ["positives", src.positive.clips, `${src.positive.detected} detected`, pct(src.positive.detected / Math.max(1, src.positive.clips))],
    ["negatives", src.negative.clips, `${src.negative.clips_with_detection} with a detection`, `${src.negative.false_activations} false activations`],
    ["hard negatives", src.hard_negative.clips, `${src.hard_negative.clips_with_detection} with a detection`, pct(src.hard_negative.false_detection_rate)],
    ...src.ambient.map((a) => [`ambient ${a.file.split("/").pop()}`, `${num(a.hours * 60, 1)} min`, `${a.false_activations} false activations`, `${fah(a.fah)} FA/h, peak ${num(a.peak_probability, 2)}`]),
  ];
  const loud = ev.loudest_false_activations.map((e) => [num(e.probability, 3), e.source, `${num(e.time_s, 2)} s`, e.file.split("/").pop(),
    el("audio", { controls: true, preload: "none", src: `/api/snippet?file=${encodeURIComponent(e.file)}&t=${e.time_s}` })]);
  root.append(
    section("At the model's settings", "eval-summary",
      el("p", {}, `${rel(ev.model.path)} (${ev.model.kind}), ${ev.split} split: ${ev.counts.positives} positives, ${ev.counts.negatives} negatives, ${ev.counts.hard_negatives} hard negatives, ${num(ev.counts.fah_hours * 60, 1)} min of audio for FA/h`),
      table(["", "cutoff", "window", "recall", "FA/h"], [
        [`evaluated (from ${at.settings_from})`, num(at.probability_cutoff, 3), at.sliding_window_size, pct(at.recall), fah(at.fah)],
        [`recommended (${rec.meets_target ? "meets" : "misses"} ${rec.target_fah} FA/h${rec.supported ? "" : "; not supported by this data"})`,
          num(rec.probability_cutoff, 3), rec.sliding_window_size, pct(rec.recall), fah(rec.fah)]], "eval-settings"),
      (ev.notes || []).map((n) => el("p", { class: "muted", text: `note: ${n}` }))),
    section("Pick the cutoff and window", "picker-section", el("div", {}, pickWindow), slider, readout, use,
      el("p", { class: "muted", text: "Recall and FA/h at every cutoff and window of ESPHome's detector on this split's audio." })),
    section("DET curve", "det-section", det),
    section("Score histogram", "hist-section", hist),
    section("Per speaker", "speaker-section", table(["speaker", "clips", "detected", "recall"],
      ev.per_speaker.map((r) => [r.speaker, r.clips, r.detected, pct(r.recall)]), "per-speaker")),
    section("Per set", "set-section", table(["set", "size", "detections", ""], perSet, "per-set")),
    el("section", { class: "wide", id: "loudest-section" }, el("h2", { text: "Loudest false activations" }),
      loud.length ? table(["window mean", "source", "at", "file", "listen"], loud, "loudest") : el("p", { id: "loudest", class: "muted", text: "None at the model's settings." })));
}

// ------------------------------------------------------------------------------------------ Export

function showExported(holder, data) {
  fill(holder, 
    el("h3", { text: `Downloads (${rel(data.export_dir)})` }),
    data.files.length ? el("ul", { id: "downloads" }, data.files.map((name) =>
      el("li", {}, el("a", { href: `/download/${encodeURIComponent(name)}`, download: name }, name)))) : el("p", { class: "muted", text: "Nothing exported yet." }),
    data.yaml ? el("h3", { text: "esphome.yaml: paste into the device's ESPHome configuration" }) : null,
    data.yaml ? el("pre", { id: "esphome-yaml", text: data.yaml }) : null);
}

async function exportPage(page) {
  const [defaults, models] = await Promise.all([api("GET", "/api/export"), api("GET", "/api/models")]);
  const checkpoint = select("export-checkpoint", models.checkpoints.map((n) => [n, n]), models.checkpoints[0]);
  const name = el("input", { type: "text", id: "export-name", value: defaults.model_name });
  const cutoff = el("input", { type: "number", id: "export-cutoff", value: defaults.probability_cutoff, step: "0.005", min: "0", max: "1" });
  const windowSize = el("input", { type: "number", id: "export-window", value: defaults.sliding_window_size, step: "1", min: "1" });
  const run = el("button", { id: "export-run" }, "Export and verify");
  const report = el("div", { id: "export-report" });
  const files = el("div", { id: "export-files" });
  run.addEventListener("click", () => act(run, async () => {
    const body = { checkpoint: checkpoint.value, model_name: name.value, cutoff: cutoff.value, window: windowSize.value };
    const result = await runJob("POST", "/api/export", body, undefined,
      (job) => { run.textContent = `Exporting… ${Math.round(job.elapsed_s)} s`; });
    fill(report, 
      el("p", { id: "verify-verdict", class: result.ok ? "message info" : "message error",
        text: result.ok ? `mww-verify: all ${result.checks.length} checks passed` : "mww-verify: some checks FAILED" }),
      el("ul", { class: "checks", id: "verify-checks" }, result.checks.map((c) =>
        el("li", { class: c.passed ? "pass" : "fail" }, el("b", { text: c.name }), ` ${c.detail}`, c.fix ? el("span", { class: "fix", text: `fix: ${c.fix}` }) : null))),
      result.warnings.map((w) => el("p", { class: "message error", text: `warning: ${w}` })),
      el("h3", { text: "What ran (the same as on a terminal)" }), el("pre", { text: `${result.command}\n\n${result.lines.join("\n")}` }));
    showExported(files, result);
  }, "Exporting…"));
  page.append(
    section("Export (mww-export)", "export-section",
      el("div", {}, field("checkpoint", checkpoint), field("model name", name)),
      el("div", {}, field("probability cutoff", cutoff), field("sliding window", windowSize)),
      el("p", { class: "muted", text: `Cutoff and window from ${rel(defaults.source)}.` }), run, files),
    section("Verification (mww-verify)", "verify-section", report));
  showExported(files, defaults);
}

// ------------------------------------------------------------------------------------------ Try it

async function tryPage(page) {
  const models = await api("GET", "/api/models");
  const model = select("try-model", models.manifests.map((n) => [n, n]), models.manifests[0]);
  const armed = el("input", { type: "checkbox", id: "try-armed" });
  const file = el("input", { type: "file", id: "try-file", accept: "audio/*,.wav,.flac,.ogg,.mp3" });
  const run = el("button", { id: "try-run" }, "Run on the file");
  const recordButton = el("button", { id: "try-record" }, "Record");
  const stopButton = el("button", { id: "try-stop", class: "secondary" }, "Stop");
  const status = el("span", { class: "muted" });
  const result = el("div", { id: "try-result" });

  async function tryAudio(name, data) {
    const query = `model=${encodeURIComponent(model.value)}&armed=${armed.checked ? 1 : 0}&name=${encodeURIComponent(name)}`;
    const r = await runJob("PUT", `/api/try?${query}`, undefined, data);
    const m = r.model, t = r.trace;
    const n = r.detections.length;
    fill(result, 
      el("p", { id: "try-summary", class: "readout" }, `${n} detection${n === 1 ? "" : "s"} of "${m.wake_word}" in ${num(r.duration_s, 2)} s`
        + (n ? "" : r.peak_probability === null ? " (too short for a full window)" : ` (highest window mean ${num(r.peak_probability, 3)} at ${num(r.peak_time_s, 2)} s)`)),
      el("p", { class: "muted", text: `cutoff ${m.probability_cutoff}, window ${m.sliding_window_size}, ${r.armed ? "armed at start" : "disarmed for the first second, as a device that just started"}` }),
      lineChart("try-trace", { series: [
        { label: "model output", points: t.time_s.map((x, i) => [x, t.probability[i]]), color: "#9db8e8" },
        { label: `window mean (${m.sliding_window_size})`, points: t.time_s.map((x, i) => [x, t.window_mean[i]]), color: "#e8804a" }],
      xLabel: "seconds", yRange: [0, 1], width: 1100, height: 280, hlines: [{ y: m.probability_cutoff, color: "#000" }],
      vlines: r.detections.map((d) => ({ x: d.time_s, color: "#3aa655" })) }),
      n ? table(["at", "window mean"], r.detections.map((d) => [`${num(d.time_s, 3)} s`, num(d.probability, 3)]), "try-detections") : null,
      r.suppressed_at_start_s.length ? el("p", { class: "muted", text: `The window mean passed the cutoff during the start-up second at ${r.suppressed_at_start_s.join(", ")} s; tick "armed" for clips that start with the wake word.` }) : null);
  }
  run.addEventListener("click", () => act(run, async () => {
    if (!file.files.length) throw new Error("mww-studio: error: choose an audio file first.");
    await tryAudio(file.files[0].name, file.files[0]);
  }, "Running…"));
  recorder(recordButton, stopButton, status, (wav) => tryAudio("recording.wav", wav));
  page.append(
    section("Try a model (mww-detect)", "try-section",
      el("div", {}, field("model", model), field("armed (no start-up second)", armed)),
      el("div", {}, file, run), el("div", {}, recordButton, stopButton, status),
      el("p", { class: "muted", text: "The exported model runs in TFLite Micro on the device's features, with ESPHome's detector." })),
    el("section", { class: "wide", id: "try-result-section" }, el("h2", { text: "Result" }), result));
}

// ------------------------------------------------------------------------------------------ start

const PAGES = { dataset: datasetPage, train: trainPage, evaluate: evaluatePage, export: exportPage, try: tryPage };

async function main() {
  const name = location.pathname.replace(/^\/+|\/+$/g, "") || "dataset";
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.page === name);
  try {
    const project = await api("GET", "/api/project");
    PROJECT = project.project;
    document.getElementById("project").textContent = `project ${project.project}`;
    document.title = `mww studio · ${name}`;
    await PAGES[name](document.getElementById("page"));
    document.body.dataset.ready = name;
  } catch (error) {
    showMessage(error.message, "error");
    document.body.dataset.ready = name;
  }
}

main();

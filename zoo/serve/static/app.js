// zoo serve page: load an image, brush a binary mask (1 = hole) at the image's own resolution,
// submit one job with several methods, poll it, show the results as they finish.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  file: null,        // the uploaded image file, sent as is
  width: 0, height: 0,
  base: null,        // ImageData of the image
  mask: null,        // Uint8Array(width * height), 1 = hole
  undo: [],          // earlier masks
  drawing: false, last: null,
  job: null, timer: null,
};

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", !!isError);
}

function holeCount() {
  let n = 0;
  if (state.mask) for (let i = 0; i < state.mask.length; i++) n += state.mask[i];
  return n;
}

function updateButtons() {
  const any = holeCount() > 0;
  $("undo").disabled = state.undo.length === 0;
  $("clear").disabled = !any;
  const picked = document.querySelectorAll("#methods input:checked").length > 0;
  const running = state.job && !["done", "cancelled", "error"].includes(state.job.status);
  $("run").disabled = !(state.base && any && picked) || running;
  $("cancel").disabled = !running;
  if (state.mask) {
    const pct = (100 * holeCount() / state.mask.length).toFixed(1);
    $("hole-info").textContent = `${state.width}x${state.height} image, hole ${pct} %`;
  }
}

// -- drawing ---------------------------------------------------------------------------
function redraw() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const out = new ImageData(new Uint8ClampedArray(state.base.data), state.width, state.height);
  const d = out.data, m = state.mask;
  for (let i = 0; i < m.length; i++) {
    if (m[i]) {  // the hole: half red over the image
      d[4 * i] = (d[4 * i] + 255) >> 1; d[4 * i + 1] >>= 1; d[4 * i + 2] >>= 1;
    }
  }
  ctx.putImageData(out, 0, 0);
}

function stamp(cx, cy, value) {
  const r = Number($("brush-size").value) / 2;
  const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(state.width - 1, Math.ceil(cx + r));
  const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(state.height - 1, Math.ceil(cy + r));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const dx = x + 0.5 - cx, dy = y + 0.5 - cy;
      if (dx * dx + dy * dy <= Math.max(r * r, 0.5)) state.mask[y * state.width + x] = value;
    }
  }
}

function strokeTo(p) {
  const value = $("mode-erase").checked ? 0 : 1;
  const a = state.last || p;
  const steps = Math.max(1, Math.ceil(Math.hypot(p.x - a.x, p.y - a.y) * 2));
  for (let s = 0; s <= steps; s++) stamp(a.x + (p.x - a.x) * s / steps, a.y + (p.y - a.y) * s / steps, value);
  state.last = p;
  redraw();
}

function pointerPos(ev) {
  const rect = $("canvas").getBoundingClientRect();
  return { x: (ev.clientX - rect.left) * state.width / rect.width, y: (ev.clientY - rect.top) * state.height / rect.height };
}

function pushUndo() {
  state.undo.push(state.mask.slice());
  if (state.undo.length > 50) state.undo.shift();
}

function setupCanvas() {
  const canvas = $("canvas");
  canvas.addEventListener("pointerdown", (ev) => {
    if (!state.base) return;
    canvas.setPointerCapture && canvas.setPointerCapture(ev.pointerId);
    pushUndo();
    state.drawing = true;
    state.last = null;
    strokeTo(pointerPos(ev));
  });
  canvas.addEventListener("pointermove", (ev) => { if (state.drawing) strokeTo(pointerPos(ev)); });
  const end = () => { if (state.drawing) { state.drawing = false; state.last = null; updateButtons(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointerleave", end);
  canvas.addEventListener("pointercancel", end);
  $("brush-size").addEventListener("input", () => { $("brush-size-value").textContent = $("brush-size").value; });
  $("undo").addEventListener("click", () => { if (state.undo.length) { state.mask = state.undo.pop(); redraw(); updateButtons(); } });
  $("clear").addEventListener("click", () => { pushUndo(); state.mask.fill(0); redraw(); updateButtons(); });
}

// -- files -----------------------------------------------------------------------------
function decode(file) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => { URL.revokeObjectURL(url); resolve(img); };
    img.onerror = () => { URL.revokeObjectURL(url); reject(new Error(`${file.name} is not an image this browser can show`)); };
    img.src = url;
  });
}

function pixelsOf(img) {
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  return ctx.getImageData(0, 0, c.width, c.height);
}

async function loadImage(file) {
  try {
    const img = await decode(file);
    state.file = file;
    state.width = img.naturalWidth; state.height = img.naturalHeight;
    state.base = pixelsOf(img);
    state.mask = new Uint8Array(state.width * state.height);
    state.undo = [];
    const canvas = $("canvas");
    canvas.width = state.width; canvas.height = state.height;
    $("canvas-wrap").classList.remove("empty");
    const size = Math.max(2, Math.round(Math.min(state.width, state.height) / 12));
    $("brush-size").value = Math.min(64, size); $("brush-size-value").textContent = $("brush-size").value;
    redraw();
    setStatus(`loaded ${file.name}: brush the region to fill`);
  } catch (err) {
    setStatus(err.message, true);
  }
  updateButtons();
}

async function loadMask(file) {
  if (!state.base) { setStatus("load the image first, then its mask", true); return; }
  try {
    const img = await decode(file);
    if (img.naturalWidth !== state.width || img.naturalHeight !== state.height) {
      setStatus(`the mask is ${img.naturalWidth}x${img.naturalHeight} but the image is ${state.width}x${state.height}; give a mask of the image's size`, true);
      return;
    }
    const d = pixelsOf(img).data;
    pushUndo();
    for (let i = 0; i < state.mask.length; i++) state.mask[i] = (d[4 * i] + d[4 * i + 1] + d[4 * i + 2]) / 3 >= 128 ? 1 : 0;
    redraw();
    setStatus(`mask ${file.name} loaded (white = hole)`);
  } catch (err) {
    setStatus(err.message, true);
  }
  updateButtons();
}

function maskBlob() {
  const c = document.createElement("canvas");
  c.width = state.width; c.height = state.height;
  const out = new ImageData(state.width, state.height);
  for (let i = 0; i < state.mask.length; i++) {
    const v = state.mask[i] ? 255 : 0;
    out.data[4 * i] = out.data[4 * i + 1] = out.data[4 * i + 2] = v; out.data[4 * i + 3] = 255;
  }
  c.getContext("2d").putImageData(out, 0, 0);
  return new Promise((resolve) => c.toBlob(resolve, "image/png"));
}

function setupFiles() {
  $("image-input").addEventListener("change", (ev) => { if (ev.target.files[0]) loadImage(ev.target.files[0]); });
  $("mask-input").addEventListener("change", (ev) => { if (ev.target.files[0]) loadMask(ev.target.files[0]); });
  for (const el of [$("drop-zone"), $("canvas-wrap")]) {
    el.addEventListener("dragover", (ev) => { ev.preventDefault(); $("drop-zone").classList.add("over"); });
    el.addEventListener("dragleave", () => $("drop-zone").classList.remove("over"));
    el.addEventListener("drop", (ev) => {
      ev.preventDefault();
      $("drop-zone").classList.remove("over");
      if (ev.dataTransfer.files[0]) loadImage(ev.dataTransfer.files[0]);
    });
  }
}

// -- methods, jobs, results --------------------------------------------------------------
async function loadMethods() {
  const res = await fetch("/api/methods");
  const data = await res.json();
  const box = $("methods");
  box.textContent = "";
  for (const m of data.methods) {
    const choices = m.needs_checkpoint ? m.checkpoints.map((c) => `${m.name}@${c.name}`) : [m.name];
    for (const value of choices) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox"; input.value = value; input.name = "method";
      input.addEventListener("change", updateButtons);
      label.append(input, ` ${value} `);
      const fam = document.createElement("span");
      fam.className = "family"; fam.textContent = m.family;
      label.append(fam);
      box.append(label);
    }
  }
  $("samples").max = data.limits.max_samples;
  updateButtons();
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "n/a";
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

async function run() {
  const methods = [...document.querySelectorAll("#methods input:checked")].map((i) => i.value);
  const form = new FormData();
  form.append("image", state.file, state.file.name);
  form.append("mask", await maskBlob(), "mask.png");
  form.append("methods", methods.join(","));
  form.append("seed", $("seed").value || "0");
  form.append("samples", $("samples").value || "1");
  $("results").textContent = "";
  $("progress").textContent = "";
  $("compare").classList.add("hidden");
  $("zip-link").classList.add("hidden");
  setStatus("submitting…");
  const res = await fetch("/api/jobs", { method: "POST", body: form });
  const body = await res.json();
  if (!res.ok) { setStatus(body.error || `HTTP ${res.status}`, true); return; }
  state.job = body;
  render(body);
  poll();
}

function poll() {
  clearTimeout(state.timer);
  state.timer = setTimeout(async () => {
    try {
      const res = await fetch(`/api/jobs/${state.job.id}`);
      const body = await res.json();
      if (!res.ok) { setStatus(body.error, true); return; }
      state.job = body;
      render(body);
      if (!["done", "cancelled", "error"].includes(body.status)) poll();
    } catch (err) {
      setStatus(`lost the server: ${err.message}`, true);
    }
  }, 300);
}

function render(job) {
  const parts = job.runs.map((r) => `${r.label}: ${r.status}`);
  const where = job.queue_position ? ` (queue position ${job.queue_position})` : "";
  setStatus(`job ${job.id} ${job.status}${where} · ${parts.join(" · ")}`, job.status === "error");
  const prog = $("progress");
  prog.textContent = "";
  for (const r of job.runs) {
    if (r.status !== "running" && r.status !== "loading") continue;
    const p = r.progress;
    const line = document.createElement("div");
    line.textContent = `${r.label}: ${r.status}${p.total ? ` ${p.phase} ${p.step}/${p.total}` : ""} · ${p.network_calls} network calls`;
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.style.width = p.total ? `${(100 * p.step / p.total).toFixed(1)}%` : "0";
    bar.append(fill);
    prog.append(line, bar);
  }
  for (const r of job.runs) {
    for (const res of r.results) {
      const id = `card-${job.id}-${r.label}-${res.sample}`;
      if (document.getElementById(id)) continue;
      $("results").append(card(job, r, res, id));
    }
    if ((r.status === "error" || r.status === "cancelled") && !document.getElementById(`card-${job.id}-${r.label}-x`)) {
      const div = document.createElement("div");
      div.className = "result-card"; div.id = `card-${job.id}-${r.label}-x`;
      div.dataset.label = r.label; div.dataset.status = r.status;
      div.innerHTML = `<div class="title"></div><div class="stats"></div>`;
      div.querySelector(".title").textContent = `${r.label}: ${r.status}`;
      div.querySelector(".stats").textContent = r.error || "";
      $("results").append(div);
    }
  }
  if (job.runs.some((r) => r.results.length)) {
    $("zip-link").href = job.zip;
    $("zip-link").classList.remove("hidden");
  }
  updateButtons();
}

function card(job, r, res, id) {
  const div = document.createElement("div");
  div.className = "result-card"; div.id = id;
  div.dataset.label = r.label; div.dataset.status = "done"; div.dataset.url = res.url;
  const img = document.createElement("img");
  img.src = res.url; img.alt = `${r.label} sample ${res.sample}`;
  const title = document.createElement("div");
  title.className = "title";
  title.textContent = job.samples > 1 ? `${r.method} #${res.sample}` : r.method;
  const stats = document.createElement("div");
  stats.className = "stats";
  stats.textContent = `checkpoint ${r.checkpoint || "none"} · ${res.network_calls ?? 0} network calls · ${res.seconds.toFixed(3)} s · peak ${fmtBytes(r.peak_memory_bytes)}`;
  const links = document.createElement("div");
  const dl = document.createElement("a");
  dl.href = res.url; dl.download = `${job.image.name}-${r.label}-s${res.sample}.png`; dl.textContent = "download";
  const cmp = document.createElement("button");
  cmp.type = "button"; cmp.textContent = "compare";
  cmp.addEventListener("click", () => compare(job, r, res));
  links.append(dl, " ", cmp);
  div.append(img, title, stats, links);
  return div;
}

function compare(job, r, res) {
  $("compare-label").textContent = `${r.label} #${res.sample}`;
  $("compare-before").src = job.image.url;
  $("compare-after").src = res.url;
  $("compare").classList.remove("hidden");
  slide();
}

function slide() {
  const v = Number($("compare-slider").value);
  $("compare-after").style.clipPath = `inset(0 0 0 ${100 - v}%)`;  // the result from the right edge, the original to the left
}

async function cancel() {
  if (!state.job) return;
  const res = await fetch(`/api/jobs/${state.job.id}/cancel`, { method: "POST" });
  const body = await res.json();
  if (!res.ok) { setStatus(body.error, true); return; }
  state.job = body;
  render(body);
}

window.addEventListener("DOMContentLoaded", () => {
  setupCanvas();
  setupFiles();
  $("run").addEventListener("click", run);
  $("cancel").addEventListener("click", cancel);
  $("compare-slider").addEventListener("input", slide);
  loadMethods().catch((err) => setStatus(`cannot list methods: ${err.message}`, true));
});

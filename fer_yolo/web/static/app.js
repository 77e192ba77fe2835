"use strict";
// fer-yolo web page: calls the JSON API only (no other scripts, works offline).

const COLORS = {
  angry: "#e53935", disgust: "#43a047", fear: "#8e24aa", happy: "#fdd835",
  sad: "#1e88e5", surprise: "#fb8c00", neutral: "#9e9e9e",
};
const $ = (id) => document.getElementById(id);
let info = { emotions: Object.keys(COLORS), live: false };

function showMessage(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

async function apiError(response) {
  try {
    const body = await response.json();
    return body.error || `request failed (${response.status})`;
  } catch (e) {
    return `request failed (${response.status})`;
  }
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function probBars(probs) {
  const box = el("div", "probs");
  for (const e of info.emotions) {
    const p = probs[e] || 0;
    const row = el("div", "prob");
    row.append(el("span", "name", e));
    const track = el("div", "track");
    const fill = el("div", "fill");
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    fill.style.background = COLORS[e];
    track.append(fill);
    row.append(track, el("span", "val", p.toFixed(2)));
    box.append(row);
  }
  return box;
}

// ---- tabs
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === tab));
    document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.id === tab.dataset.tab));
    showMessage("");
    if (tab.dataset.tab === "live") startLive();
  });
}

function wireDrop(dropId, inputId, handler) {
  const drop = $(dropId), input = $(inputId);
  input.addEventListener("change", () => input.files.length && handler(input.files[0]));
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    if (ev.dataTransfer.files.length) handler(ev.dataTransfer.files[0]);
  });
}

// ---- photo
async function analysePhoto(file) {
  showMessage("");
  $("photo-result").hidden = true;
  $("photo-busy").hidden = false;
  const form = new FormData();
  form.append("file", file);
  try {
    const response = await fetch("/api/image", { method: "POST", body: form });
    if (!response.ok) { showMessage(await apiError(response)); return; }
    renderPhoto(await response.json());
  } catch (e) {
    showMessage(`could not reach the server: ${e}`);
  } finally {
    $("photo-busy").hidden = true;
  }
}

function renderPhoto(result) {
  const img = $("photo-annotated");
  img.src = result.annotated_jpeg;
  const n = result.faces.length;
  $("photo-caption").textContent = `${n} face${n === 1 ? "" : "s"} · ${result.width}×${result.height} px · ` +
    `${result.latency_ms.total.toFixed(0)} ms`;
  const cards = $("face-cards");
  cards.replaceChildren();
  if (!n) cards.append(el("p", "sub", "No face found in this photo."));
  img.onload = () => {
    result.faces.forEach((face, i) => {
      const card = el("div", "card face-card");
      const head = el("div", "card-head");
      const thumb = document.createElement("canvas");
      thumb.width = thumb.height = 112;
      const [x1, y1, x2, y2] = face.box_xyxy;
      const sx = img.naturalWidth / result.width, sy = img.naturalHeight / result.height;
      thumb.getContext("2d").drawImage(img, x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy, 0, 0, 112, 112);
      const text = el("div");
      text.append(el("div", "title", `${face.emotion} ${(face.probs[face.emotion] * 100).toFixed(0)}%`));
      text.append(el("div", "sub", `face ${i + 1} · confidence ${face.confidence.toFixed(2)}`));
      head.append(thumb, text);
      card.append(head, probBars(face.probs));
      cards.append(card);
    });
  };
  $("photo-json").textContent = JSON.stringify({ ...result, annotated_jpeg: "(data URL)" }, null, 2);
  $("photo-result").hidden = false;
}

// ---- video
function uploadVideo(file) {
  showMessage("");
  $("video-result").hidden = true;
  $("video-progress").hidden = false;
  $("video-stage").textContent = "Uploading…";
  $("video-bar").style.width = "0";
  const form = new FormData();
  form.append("file", file);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/videos");
  xhr.upload.onprogress = (ev) => {
    if (ev.lengthComputable) $("video-bar").style.width = `${(100 * ev.loaded / ev.total).toFixed(0)}%`;
  };
  xhr.onload = () => {
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status !== 202) {
      $("video-progress").hidden = true;
      showMessage(body.error || `upload failed (${xhr.status})`);
      return;
    }
    pollVideo(body.status_url);
  };
  xhr.onerror = () => { $("video-progress").hidden = true; showMessage("could not reach the server"); };
  xhr.send(form);
}

async function pollVideo(url) {
  const response = await fetch(url);
  if (!response.ok) { $("video-progress").hidden = true; showMessage(await apiError(response)); return; }
  const job = await response.json();
  if (job.status === "error") { $("video-progress").hidden = true; showMessage(job.error); return; }
  if (job.status !== "done") {
    const pct = job.progress ? (100 * job.progress).toFixed(0) : 0;
    $("video-stage").textContent = job.status === "queued" ? "Waiting for the previous video…" :
      `Processing: frame ${job.frames}${job.total ? " of " + job.total : ""}`;
    $("video-bar").style.width = `${pct}%`;
    setTimeout(() => pollVideo(url), 700);
    return;
  }
  $("video-progress").hidden = true;
  if (job.incomplete) showMessage(`Incomplete video: ${job.incomplete}`);
  $("video-player").src = job.files["video.webm"];
  const chart = job.files["emotions.png"];  // none when no face was seen
  $("video-chart").hidden = !chart;
  if (chart) $("video-chart").src = chart;
  $("dl-video").href = job.files["video.webm"];
  $("dl-csv").href = job.files["timeline.csv"];
  $("dl-json").href = job.files["timeline.jsonl"];
  $("dl-summary").href = job.files["summary.json"];
  const summary = await (await fetch(job.files["summary.json"])).json();
  const cards = $("track-cards");
  cards.replaceChildren();
  for (const track of summary.tracks.filter((t) => t.frames >= 5)) {
    const card = el("div", "card");
    card.append(el("div", "title", `Face #${track.track_id}: ${track.dominant_emotion}`));
    card.append(el("div", "sub", `${track.first_t_s.toFixed(1)}–${track.last_t_s.toFixed(1)} s, ${track.frames} frames`));
    const total = Object.values(track.emotion_s).reduce((a, b) => a + b, 0) || 1;
    const shares = Object.fromEntries(info.emotions.map((e) => [e, (track.emotion_s[e] || 0) / total]));
    card.append(probBars(shares));
    cards.append(card);
  }
  $("video-result").hidden = false;
}

// ---- live
let liveStarted = false, liveFailed = false, liveRetried = Date.now();
function startLive() {
  if (!info.live) { $("live-off").hidden = false; return; }
  $("live-on").hidden = false;
  if (liveStarted) return;
  liveStarted = true;
  $("live-img").src = "/api/live.mjpg";
  setInterval(drawLiveChart, 1000);
}

async function drawLiveChart() {
  const response = await fetch("/api/live/stats");
  if (!response.ok) return;
  const stats = await response.json();
  if (stats.error) {  // the feed stopped: show why, and reconnect (which restarts it) every 5 s
    showMessage(`live source: ${stats.error}`);
    liveFailed = true;
    if (Date.now() - liveRetried > 5000) {
      liveRetried = Date.now();
      $("live-img").src = `/api/live.mjpg?t=${liveRetried}`;
    }
    return;
  }
  if (stats.reconnecting) {  // a network stream dropped: the picture stands still until it is back
    showMessage(`live source lost: reconnecting (attempt ${stats.reconnecting})`);
    liveFailed = true;
  } else if (liveFailed) { liveFailed = false; showMessage(""); }  // it is back
  const canvas = $("live-chart"), ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28, span = 60;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#6b7280";
  ctx.font = "12px system-ui";
  ctx.fillText(`faces per emotion, last ${span} s${stats.fps ? ` · ${stats.fps} FPS` : ""}`, pad, 16);
  const colW = (w - 2 * pad) / span;
  stats.seconds_ago.forEach((ago, i) => {
    const counts = info.emotions.map((e) => stats.counts[e][i]);
    const total = counts.reduce((a, b) => a + b, 0);
    if (!total) return;
    let y = h - pad;
    counts.forEach((c, k) => {
      const bh = (h - 2 * pad) * c / total;
      ctx.fillStyle = COLORS[info.emotions[k]];
      ctx.fillRect(w - pad - (ago + 1) * colW, y - bh, colW - 1, bh);
      y -= bh;
    });
  });
  let x = pad;
  for (const e of info.emotions) {
    ctx.fillStyle = COLORS[e];
    ctx.fillRect(x, h - 14, 10, 10);
    ctx.fillStyle = "#1f2430";
    ctx.fillText(e, x + 14, h - 5);
    x += 90;
  }
}

// ---- start
wireDrop("photo-drop", "photo-input", analysePhoto);
wireDrop("video-drop", "video-input", uploadVideo);
fetch("/api/info").then((r) => r.json()).then((i) => {
  info = i;
  $("photo-limit").textContent = `JPEG, PNG, WebP… up to ${i.max_image_mb} MB`;
  $("video-limit").textContent = `MP4, MOV, MKV, WebM, AVI up to ${i.max_video_mb} MB`;
});

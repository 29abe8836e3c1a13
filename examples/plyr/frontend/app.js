"use strict";

// Set by config.js, which is written per environment.
const API = String(window.PUBLIC_API_URL || "").replace(/\/+$/, "");
const ENVIRONMENT = window.TIERS_ENVIRONMENT || "";

const $ = (id) => document.getElementById(id);

function api(path, options = {}) {
  return fetch(API + path, { credentials: "include", ...options });
}

function element(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function showEnvironment() {
  const banner = $("environment");
  if (!API) {
    banner.textContent = "not configured: config.js is missing (copy config.example.js)";
    banner.className = "banner error";
    $("backend").textContent = "no API to talk to";
    return false;
  }
  const name = ENVIRONMENT || "unknown environment";
  banner.textContent = name;
  banner.className = "banner env-" + name.replace(/[^a-z0-9-]/gi, "");
  if (ENVIRONMENT && ENVIRONMENT !== "production") {
    document.title = "plyr (" + ENVIRONMENT + ")";
  }
  return true;
}

async function showBackend() {
  const line = $("backend");
  try {
    const response = await api("/health");
    const health = await response.json();
    const parts = [
      "API " + API,
      health.environment || "no environment",
      health.version ? "version " + health.version : null,
      health.migration_head ? "schema " + health.migration_head : null,
    ];
    line.textContent = parts.filter(Boolean).join(" · ");
    if (ENVIRONMENT && health.environment && health.environment !== ENVIRONMENT) {
      line.textContent += " — this " + ENVIRONMENT + " page talks to " + health.environment + "'s API!";
      line.className = "error";
    }
  } catch (error) {
    line.textContent = "cannot reach the API at " + API + " (" + error.message + ")";
    line.className = "error";
  }
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "measuring…";
  const total = Math.round(seconds);
  return Math.floor(total / 60) + ":" + String(total % 60).padStart(2, "0");
}

function trackItem(track) {
  const cover = track.image_url
    ? element("img", { className: "cover", src: API + track.image_url, alt: "" })
    : element("div", { className: "cover none" });
  return element(
    "li",
    { className: "track" },
    cover,
    element(
      "div",
      { className: "meta" },
      element("strong", { textContent: track.title }),
      element("span", { className: "duration", textContent: duration(track.duration_seconds) }),
      element("code", { className: "uri", textContent: track.uri }),
      element("audio", { controls: true, preload: "none", src: API + track.audio_url })
    )
  );
}

let polls = 0;

async function loadTracks() {
  const status = $("tracks-status");
  try {
    const response = await api("/tracks");
    if (!response.ok) throw new Error("HTTP " + response.status);
    const tracks = await response.json();
    $("tracks").replaceChildren(...tracks.map(trackItem));
    status.textContent = tracks.length ? "" : "No tracks yet.";
    // The worker measures new tracks in the background; look again shortly.
    if (tracks.some((t) => t.duration_seconds === null) && polls < 30) {
      polls += 1;
      setTimeout(loadTracks, 2000);
    }
  } catch (error) {
    status.textContent = "Could not load tracks: " + error.message;
  }
}

async function upload(event) {
  event.preventDefault();
  const form = event.target;
  const status = $("upload-status");
  const data = new FormData();
  data.append("title", form.title.value);
  data.append("audio", form.audio.files[0]);
  if (form.image.files.length) data.append("image", form.image.files[0]);
  status.textContent = "Uploading…";
  try {
    const response = await api("/tracks", { method: "POST", body: data });
    const body = await response.json();
    if (!response.ok) {
      throw new Error(typeof body.detail === "string" ? body.detail : "HTTP " + response.status);
    }
    status.textContent = "Uploaded \u201c" + body.title + "\u201d.";
    form.reset();
    polls = 0;
    await loadTracks();
  } catch (error) {
    status.textContent = "Upload failed: " + error.message;
  }
}

if (showEnvironment()) {
  $("upload").addEventListener("submit", upload);
  showBackend();
  loadTracks();
}

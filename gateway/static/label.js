// The label editor (templates/label.html): asks the station for the raw photograph (frame/get via
// the gateway), waits for its answer, then lets a person paint one layer per defect type over it,
// starting from the model's own masks, and sends the label (label/set via the gateway).
// Layers are canvases at the photograph's own resolution, so a mask is the frame's size whatever
// the zoom; pointer events make mouse, pen and touch work alike.
(function () {
  "use strict";
  const root = document.getElementById("label-editor");
  if (!root) return;

  const COLOURS = {wear: "#ff9800", corrosion: "#e53935", coating_damage: "#8e24aa", anomaly: "#00b8d4"};
  const SPARE_COLOURS = ["#43a047", "#fdd835", "#3949ab", "#6d4c41"];
  const POLL_MS = 700, WAIT_S = 45, UNDO_MAX = 30, SET_ALPHA = 128;
  const station = root.dataset.station, inspection = root.dataset.id, view = Number(root.dataset.view);
  const csrf = root.dataset.csrf;
  const base = "/inspections/" + encodeURIComponent(station) + "/" + encodeURIComponent(inspection);
  const $ = (id) => document.getElementById(id);
  const TEXT = JSON.parse($("label-text").textContent);  // in the page's language
  // TEXT[key] with each {field} replaced
  const t = (key, fields) => TEXT[key].replace(/\{(\w+)\}/g, (m, f) => (fields && f in fields ? fields[f] : m));
  const typeName = (name) => TEXT.names[name] || name.replace(/_/g, " ");
  const state = {width: 0, height: 0, layers: [], active: null, tool: "paint", brush: 24, zoom: 1,
                 undo: [], stroke: null, cursor: null};
  root.labelState = state;  // for whoever needs to read it, tests included

  // ------------------------------------------------------------ messages

  function show(el, on) { el.hidden = !on; }
  function status(text) { $("label-status").textContent = text; show($("label-status"), !!text); }
  function done(text) { $("label-done").textContent = text; show($("label-done"), !!text); }
  function error(text) { $("label-error").textContent = text; show($("label-error"), !!text); }
  function fail(text) { error(text); status(""); show($("label-retry"), true); }
  function detail(data) {
    if (!data || data.detail === undefined) return "";
    return typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
  }
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function call(url, options) {
    const resp = await fetch(url, Object.assign({credentials: "same-origin"}, options));
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(detail(data) || "HTTP " + resp.status);
    return data;
  }
  function post(url, body) {
    return call(url, {method: "POST", body: JSON.stringify(body || {}),
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf}});
  }

  // ------------------------------------------------------------ asking the station

  async function requestFrame() {
    error(""); done(""); show($("label-retry"), false); show($("label-work"), false);
    status(t("waiting"));
    let req;
    try {
      req = await post(base + "/frame-request?view=" + view);
    } catch (e) {
      return fail(t("askFailed", {problem: e.message}));
    }
    const url = base + "/frame?view=" + view + "&command_id=" + encodeURIComponent(req.command_id) +
      "&after=" + req.after;
    const deadline = Date.now() + WAIT_S * 1000;
    while (Date.now() < deadline) {
      await sleep(POLL_MS);
      let answer;
      try {
        answer = await call(url, {headers: {"Accept": "application/json"}});
      } catch (e) {
        status(t("waitingBecause", {problem: e.message}));
        continue;
      }
      if (answer.state === "ready") return load(answer);
      if (answer.state === "error") return fail(t("stationFailed", {problem: answer.error}));
      if (answer.refused) status(t("waitingRefused", {problem: answer.refused}));
    }
    fail(t("noAnswer", {seconds: WAIT_S}));
  }

  function loadImage(img, src) {
    return new Promise((resolve, reject) => {
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error(t("cannotLoad", {what: src})));
      img.src = src;
    });
  }

  // ------------------------------------------------------------ layers

  async function load(answer) {
    try {
      state.width = answer.width; state.height = answer.height;
      await loadImage($("label-photo"), answer.image_url);
      const fromModel = Object.keys(answer.masks);
      const names = fromModel.concat(answer.defect_types.filter((n) => !fromModel.includes(n)));
      const holder = $("label-canvases");
      holder.textContent = "";
      state.layers = [];
      state.undo = [];
      for (const [i, name] of names.entries()) {
        const layer = makeLayer(name, COLOURS[name] || SPARE_COLOURS[i % SPARE_COLOURS.length]);
        layer.fromModel = fromModel.includes(name);
        if (layer.fromModel) await paintMask(layer, answer.masks[name]);
        holder.appendChild(layer.canvas);
        state.layers.push(layer);
      }
      state.cursor = makeCursor();
      holder.appendChild(state.cursor);
      buildLayerList();
      select(state.layers[0]);
      $("label-model").textContent = answer.model
        ? t("fromModelMasks", {model: answer.model, width: answer.width, height: answer.height})
        : t("size", {width: answer.width, height: answer.height});
      status("");
      show($("label-work"), true);
      fit();
      updateUndo();
    } catch (e) {
      fail(t("cannotShow", {problem: e.message}));
    }
  }

  function makeLayer(name, colour) {
    const canvas = document.createElement("canvas");
    canvas.width = state.width; canvas.height = state.height;
    canvas.className = "layer";
    canvas.dataset.type = name;
    return {name, colour, canvas, ctx: canvas.getContext("2d", {willReadFrequently: true}), fromModel: false};
  }

  // A model mask is non-zero where it sees the defect; drawn in the layer's colour, opaque.
  async function paintMask(layer, src) {
    const img = await loadImage(new Image(), src);
    const scratch = document.createElement("canvas");
    scratch.width = state.width; scratch.height = state.height;
    const sctx = scratch.getContext("2d", {willReadFrequently: true});
    sctx.drawImage(img, 0, 0);
    const mask = sctx.getImageData(0, 0, state.width, state.height).data;
    const out = layer.ctx.createImageData(state.width, state.height);
    const [r, g, b] = rgb(layer.colour);
    for (let p = 0; p < mask.length; p += 4) {
      if (mask[p + 3] > 0 && (mask[p] || mask[p + 1] || mask[p + 2])) {
        out.data[p] = r; out.data[p + 1] = g; out.data[p + 2] = b; out.data[p + 3] = 255;
      }
    }
    layer.ctx.putImageData(out, 0, 0);
  }

  function rgb(hex) {
    const n = parseInt(hex.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }

  function buildLayerList() {
    const list = $("label-layers");
    list.textContent = "";
    for (const layer of state.layers) {
      const row = document.createElement("label");
      row.className = "label-layer";
      row.dataset.type = layer.name;
      const radio = document.createElement("input");
      radio.type = "radio"; radio.name = "label-layer"; radio.value = layer.name;
      radio.addEventListener("change", () => select(layer));
      const swatch = document.createElement("span");
      swatch.className = "swatch"; swatch.style.background = layer.colour;
      const name = document.createElement("span");
      name.textContent = typeName(layer.name);
      if (layer.fromModel) {
        const from = document.createElement("div");
        from.className = "from"; from.textContent = t("fromModel");
        name.appendChild(from);
      }
      const eye = document.createElement("input");
      eye.type = "checkbox"; eye.checked = true; eye.title = t("showLayer");
      eye.setAttribute("aria-label", t("showNamed", {name: typeName(layer.name)}));
      eye.addEventListener("click", (e) => e.stopPropagation());
      eye.addEventListener("change", () => { layer.canvas.style.display = eye.checked ? "" : "none"; });
      row.append(radio, swatch, name, eye);
      layer.row = row; layer.radio = radio;
      list.appendChild(row);
    }
  }

  function select(layer) {
    state.active = layer;
    for (const l of state.layers) {
      l.row.classList.toggle("on", l === layer);
      l.radio.checked = l === layer;
    }
  }

  // ------------------------------------------------------------ painting

  function makeCursor() {
    const c = document.createElement("canvas");
    c.width = state.width; c.height = state.height;
    c.className = "cursor";
    c.addEventListener("pointerdown", down);
    c.addEventListener("pointermove", move);
    c.addEventListener("pointerup", up);
    c.addEventListener("pointercancel", up);
    c.addEventListener("pointerleave", () => outline(null));
    return c;
  }

  function point(e) {
    const box = state.cursor.getBoundingClientRect();
    return {x: (e.clientX - box.left) * state.width / box.width,
            y: (e.clientY - box.top) * state.height / box.height};
  }

  function down(e) {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    if (!state.active || state.stroke) return;
    e.preventDefault();
    try {
      state.cursor.setPointerCapture(e.pointerId);  // the stroke goes on past the canvas' edge
    } catch (err) { /* a pointer the browser no longer tracks: paint without capture */ }
    remember(state.active);
    const p = point(e);
    const ctx = state.active.ctx;
    ctx.save();
    ctx.globalCompositeOperation = state.tool === "erase" ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = state.active.colour;
    ctx.lineWidth = state.brush; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.arc(p.x, p.y, state.brush / 2, 0, 2 * Math.PI); ctx.fill();
    state.stroke = {id: e.pointerId, last: p, ctx};
  }

  function move(e) {
    const p = point(e);
    outline(p);
    const s = state.stroke;
    if (!s || e.pointerId !== s.id) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of events.length ? events : [e]) {
      const q = point(ev);
      s.ctx.beginPath(); s.ctx.moveTo(s.last.x, s.last.y); s.ctx.lineTo(q.x, q.y); s.ctx.stroke();
      s.last = q;
    }
  }

  function up(e) {
    const s = state.stroke;
    if (!s || e.pointerId !== s.id) return;
    s.ctx.restore();
    state.stroke = null;
    done("");
  }

  function outline(p) {
    const c = state.cursor, ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    if (!p) return;
    ctx.beginPath(); ctx.arc(p.x, p.y, state.brush / 2, 0, 2 * Math.PI);
    ctx.lineWidth = Math.max(1, 1.5 / state.zoom);
    ctx.strokeStyle = state.tool === "erase" ? "#ffffff" : (state.active ? state.active.colour : "#fff");
    ctx.stroke();
  }

  function remember(layer) {
    state.undo.push({layer, data: layer.ctx.getImageData(0, 0, state.width, state.height)});
    if (state.undo.length > UNDO_MAX) state.undo.shift();
    updateUndo();
  }

  function undo() {
    const step = state.undo.pop();
    if (step) step.layer.ctx.putImageData(step.data, 0, 0);
    updateUndo();
  }

  function updateUndo() { $("label-undo").disabled = state.undo.length === 0; }

  function setTool(tool) {
    state.tool = tool;
    for (const t of ["paint", "erase"]) {
      $("tool-" + t).classList.toggle("on", t === tool);
      $("tool-" + t).setAttribute("aria-pressed", String(t === tool));
    }
  }

  function setBrush(size) {
    state.brush = Math.max(2, Math.min(120, Math.round(size)));
    $("brush-size").value = state.brush;
    $("brush-size-value").textContent = state.brush;
  }

  // ------------------------------------------------------------ zoom

  function setZoom(z) {
    state.zoom = Math.max(0.05, Math.min(8, z));
    const stage = $("label-stage");
    stage.style.width = Math.round(state.width * state.zoom) + "px";
    stage.style.height = Math.round(state.height * state.zoom) + "px";
    $("zoom-value").textContent = Math.round(state.zoom * 100) + " %";
  }

  function fit() {
    const vp = $("label-viewport");
    const maxH = parseFloat(getComputedStyle(vp).maxHeight) || vp.clientHeight || state.height;
    setZoom(Math.min(vp.clientWidth / state.width, maxH / state.height));
  }

  // ------------------------------------------------------------ sending

  // A layer as a PNG of the frame's size: white, opaque where painted, transparent elsewhere
  // (non-zero and opaque mean the same there); null when nothing is painted on it.
  function maskPng(layer) {
    const src = layer.ctx.getImageData(0, 0, state.width, state.height).data;
    const scratch = document.createElement("canvas");
    scratch.width = state.width; scratch.height = state.height;
    const sctx = scratch.getContext("2d");
    const out = sctx.createImageData(state.width, state.height);
    let painted = 0;
    for (let p = 3; p < src.length; p += 4) {
      if (src[p] >= SET_ALPHA) {
        out.data[p - 3] = out.data[p - 2] = out.data[p - 1] = out.data[p] = 255;
        painted++;
      }
    }
    sctx.putImageData(out, 0, 0);
    return {painted, png: scratch.toDataURL("image/png").split(",", 2)[1]};
  }

  async function submit(good) {
    error(""); done("");
    let body;
    const shown = [];  // the painted types, as the reader names them
    if (good) {
      body = {view, good: true};
    } else {
      const masks = {};
      let painted = 0;
      for (const layer of state.layers) {
        const m = maskPng(layer);
        masks[layer.name] = m.png;  // every type, so an erased one says "none of this"
        painted += m.painted;
        if (m.painted) shown.push(typeName(layer.name));
      }
      if (!painted) return error(t("nothingPainted"));
      body = {view, masks};
    }
    setBusy(true);
    try {
      const sent = await post(base + "/label", body);
      done(good ? t("sentGood", {station}) : t("sentDefects", {station, defects: shown.join(", ")}));
    } catch (e) {
      error(t("notSent", {problem: e.message}));
    } finally {
      setBusy(false);
    }
  }

  function setBusy(busy) {
    $("label-submit").disabled = busy;
    $("label-good").disabled = busy;
  }

  // ------------------------------------------------------------ wiring

  $("tool-paint").addEventListener("click", () => setTool("paint"));
  $("tool-erase").addEventListener("click", () => setTool("erase"));
  $("brush-size").addEventListener("input", (e) => setBrush(Number(e.target.value)));
  $("label-undo").addEventListener("click", undo);
  $("label-clear").addEventListener("click", () => {
    if (!state.active) return;
    remember(state.active);
    state.active.ctx.clearRect(0, 0, state.width, state.height);
  });
  $("zoom-in").addEventListener("click", () => setZoom(state.zoom * 1.25));
  $("zoom-out").addEventListener("click", () => setZoom(state.zoom / 1.25));
  $("zoom-fit").addEventListener("click", fit);
  $("label-viewport").addEventListener("wheel", (e) => {
    if (!e.ctrlKey) return;
    e.preventDefault();
    setZoom(state.zoom * (e.deltaY < 0 ? 1.1 : 1 / 1.1));
  }, {passive: false});
  $("label-submit").addEventListener("click", () => submit(false));
  $("label-good").addEventListener("click", () => submit(true));
  $("label-retry-button").addEventListener("click", requestFrame);
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, textarea, select")) return;
    if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); undo(); }
    else if (e.key === "[") setBrush(state.brush / 1.25);
    else if (e.key === "]") setBrush(state.brush * 1.25);
    else if (e.key === "e") setTool("erase");
    else if (e.key === "b") setTool("paint");
  });

  requestFrame();
})();

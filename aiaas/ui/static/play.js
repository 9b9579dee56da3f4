// aiaas console playgrounds: a form built from the model's inputs and task, the answer drawn for its task,
// and the equivalent curl and Python calls. Requests go to /ui/api (the API's own handlers, session-authenticated).
(function () {
  "use strict";
  const $ = (tag, attrs, ...kids) => {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") el.className = v; else if (k === "text") el.textContent = v; else el.setAttribute(k, v);
    }
    kids.forEach((c) => el.append(c));
    return el;
  };
  let uid = 0;
  const field = (labelText, input) => { input.id = input.id || "f" + (++uid); return $("div", {}, $("label", { for: input.id, text: labelText }), input); };
  const origin = () => window.location.origin;

  // ---- equivalent calls -------------------------------------------------------------------------------------
  function showCode(box, path, body) {
    const json = JSON.stringify(body);
    const short = json.length > 600 ? JSON.stringify(shorten(body)) : json;
    const curl = `curl -s ${origin()}${path} \\\n  -H "Authorization: Bearer $AIAAS_KEY" -H "Content-Type: application/json" \\\n  -d '${short.replace(/'/g, "'\\''")}'`;
    const py = `import os, httpx\n\nbody = ${short}\nr = httpx.post("${origin()}${path}", json=body,\n               headers={"Authorization": f"Bearer {os.environ['AIAAS_KEY']}"}, timeout=60)\nprint(r.json())`;
    box.innerHTML = "";
    box.append($("h3", { text: "curl" }), $("pre", { class: "code", text: curl }), $("h3", { text: "Python" }), $("pre", { class: "code", text: py }));
    if (short !== json) box.append($("p", { class: "reason", text: "Long values are shortened here (…)." }));
  }
  function shorten(v) {
    if (typeof v === "string") return v.length > 80 ? v.slice(0, 60) + "…" : v;
    if (Array.isArray(v)) return v.length > 24 ? v.slice(0, 24).map(shorten).concat(["…"]) : v.map(shorten);
    if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shorten(x)]));
    return v;
  }

  // ---- chat (LLMs): token streaming with a stop button -------------------------------------------------------
  function chat(root, cfg) {
    const sys = $("textarea", { rows: "2" }); sys.value = "You are a helpful assistant.";
    const msg = $("textarea", { rows: "3" }); msg.value = (cfg.example && cfg.example.inputs[0].data[0]) || "Hello!";
    const temp = $("input", { type: "number", step: "0.1", min: "0", max: "2", value: "0.7" });
    const maxTok = $("input", { type: "number", min: "1", max: "4096", value: "64" });
    const send = $("button", { type: "submit", text: "Send" });
    const stop = $("button", { type: "button", class: "secondary", text: "Stop", disabled: "" });
    const out = $("div", { class: "result", "aria-live": "polite", "data-testid": "result" });
    const code = $("div", {});
    const form = $("form", {}, field("System prompt", sys), field("Message", msg),
      $("div", { class: "fields" }, field("Temperature", temp), field("Max tokens", maxTok)), send, " ", stop);
    root.append($("div", { class: "play" }, $("div", {}, form, $("h3", { text: "Answer" }), out), code));
    let ctrl = null;
    stop.addEventListener("click", () => ctrl && ctrl.abort());
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = { model: cfg.name, stream: true, temperature: Number(temp.value), max_tokens: Number(maxTok.value),
        messages: [{ role: "system", content: sys.value }, { role: "user", content: msg.value }] };
      showCode(code, "/v1/chat/completions", body);
      out.textContent = ""; out.classList.remove("error");
      ctrl = new AbortController(); send.disabled = true; stop.disabled = false;
      try {
        const r = await fetch("/ui/api/chat/completions", { method: "POST", signal: ctrl.signal, credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": aiaas.csrf() }, body: JSON.stringify(body) });
        if (!r.ok) { const j = await r.json().catch(() => ({})); throw new Error((j.error && j.error.message) || r.statusText); }
        const reader = r.body.getReader(); const dec = new TextDecoder(); let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const ev = buf.slice(0, i); buf = buf.slice(i + 2);
            for (const line of ev.split("\n")) {
              if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
              const j = JSON.parse(line.slice(6));
              const d = j.choices && j.choices[0] && j.choices[0].delta;
              if (d && d.content) out.textContent += d.content;
            }
          }
        }
      } catch (err) {
        if (err.name !== "AbortError") { out.textContent = err.message; out.classList.add("error"); }
        else out.append($("em", { text: " [stopped]" }));
      } finally { send.disabled = false; stop.disabled = true; ctrl = null; }
    });
  }

  // ---- V2 playgrounds ---------------------------------------------------------------------------------------
  const b64file = (file) => new Promise((ok, bad) => {
    const r = new FileReader();
    r.onload = () => ok(String(r.result).split(",", 2)[1]); r.onerror = () => bad(r.error); r.readAsDataURL(file);
  });

  // A browser recording (webm/ogg) -> 16 kHz mono 16-bit WAV, base64 (what the speech models read).
  async function toWav(buf) {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    const decoded = await ctx.decodeAudioData(buf);
    ctx.close();
    const rate = 16000, n = Math.ceil(decoded.duration * rate);
    const off = new OfflineAudioContext(1, n, rate);
    const src = off.createBufferSource(); src.buffer = decoded; src.connect(off.destination); src.start();
    const pcm = (await off.startRendering()).getChannelData(0);
    const out = new DataView(new ArrayBuffer(44 + pcm.length * 2));
    const str = (o, t) => [...t].forEach((c, i) => out.setUint8(o + i, c.charCodeAt(0)));
    str(0, "RIFF"); out.setUint32(4, 36 + pcm.length * 2, true); str(8, "WAVEfmt ");
    out.setUint32(16, 16, true); out.setUint16(20, 1, true); out.setUint16(22, 1, true);
    out.setUint32(24, rate, true); out.setUint32(28, rate * 2, true); out.setUint16(32, 2, true); out.setUint16(34, 16, true);
    str(36, "data"); out.setUint32(40, pcm.length * 2, true);
    pcm.forEach((v, i) => out.setInt16(44 + i * 2, Math.max(-1, Math.min(1, v)) * 0x7fff, true));
    let bin = ""; const bytes = new Uint8Array(out.buffer);
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(bin);
  }

  function inputWidget(spec, ex, cfg) {
    // returns {el, value: async () => V2 input}
    const name = spec.name, dt = spec.datatype;
    const exData = ex ? ex.data : null;
    if (dt === "BYTES" && (name === "image_b64" || name === "audio_b64")) {
      const kind = name === "image_b64" ? "image" : "audio";
      const file = $("input", { type: "file", accept: kind + "/*" });
      const preview = $("div", { class: "preview" });
      let current = exData ? exData[0] : null;
      const show = () => {
        preview.innerHTML = "";
        if (!current) return;
        const mime = kind === "image" ? (current.startsWith("/9j/") ? "image/jpeg" : "image/png") : "audio/wav";
        preview.append(kind === "image" ? $("img", { src: `data:${mime};base64,${current}`, alt: "input image", class: "input-img" })
          : $("audio", { controls: "", src: `data:${mime};base64,${current}` }));
      };
      file.addEventListener("change", async () => { if (file.files[0]) { current = await b64file(file.files[0]); show(); } });
      show();
      const extra = [];
      if (kind === "audio" && navigator.mediaDevices && window.MediaRecorder) {
        const rec = $("button", { type: "button", class: "secondary", text: "Record" });
        let recorder = null;
        rec.addEventListener("click", async () => {
          if (recorder) { recorder.stop(); return; }
          try {
            const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
            const chunks = [];
            recorder = new MediaRecorder(stream);
            recorder.ondataavailable = (e) => chunks.push(e.data);
            recorder.onstop = async () => {
              stream.getTracks().forEach((t) => t.stop());
              recorder = null; rec.textContent = "Record";
              current = await toWav(await new Blob(chunks).arrayBuffer()); show();
            };
            recorder.start(); rec.textContent = "Stop recording";
          } catch (err) { rec.textContent = "Record (" + err.message + ")"; }
        });
        extra.push(rec);
      }
      return { el: $("div", {}, field(kind === "image" ? "Image (PNG or JPEG)" : "Audio (WAV)", file), ...extra,
        $("p", { class: "reason", text: current ? "Or keep the example below." : "" }), preview),
        value: async () => { if (!current) throw new Error(`choose a ${kind} file`); return { name, shape: [1], datatype: dt, data: [current] }; },
        kind, current: () => current };
    }
    if (dt === "BYTES" && name === "rows") return tabular(spec, exData, cfg);
    if (dt === "BYTES" && name === "fen") {
      const inp = $("input", { type: "text", value: exData ? exData[0] : "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1" });
      const board = $("div", { class: "board", role: "img", "aria-label": "chess board" });
      const draw = () => drawBoard(board, inp.value, null); inp.addEventListener("input", draw); draw();
      return { el: $("div", {}, field("Position (FEN)", inp), board), value: async () => ({ name, shape: [1], datatype: dt, data: [inp.value] }), board, fen: () => inp.value };
    }
    if (dt === "BYTES") {
      const multi = cfg.task === "text-embedding";
      const ta = $("textarea", { rows: multi ? "4" : (name === "request" ? "8" : "3") });
      ta.value = exData ? (multi ? exData.join("\n") : exData[0]) : "";
      const label = multi ? `${name} (one sentence per line)` : name;
      return { el: field(label, ta), value: async () => {
        const rows = multi ? ta.value.split("\n").map((s) => s.trim()).filter(Boolean) : [ta.value];
        return { name, shape: [rows.length], datatype: dt, data: rows };
      }, text: () => ta.value };
    }
    const inp = $("input", { type: "text", value: exData ? exData.join(", ") : "" });
    const shape = ex ? ex.shape : spec.shape.map((d) => (d < 0 ? 1 : d));
    return { el: field(`${name} (${dt}, shape ${JSON.stringify(shape)}; comma-separated)`, inp), value: async () => {
      const vals = inp.value.split(/[\s,]+/).filter(Boolean).map(Number);
      if (vals.some((v) => Number.isNaN(v))) throw new Error(`${name}: numbers only`);
      const n = shape.reduce((a, b) => a * b, 1);
      if (vals.length !== n) throw new Error(`${name}: shape ${JSON.stringify(shape)} needs ${n} values, got ${vals.length}`);
      return { name, shape, datatype: dt, data: vals };
    } };
  }

  // A form generated from the model's feature list (the example row's names, or its named FP32 inputs).
  function tabular(spec, exData, cfg) {
    let row = {};
    if (exData) { try { row = JSON.parse(exData[0]); } catch (e) { row = {}; } }
    if (Array.isArray(row)) {
      const names = cfg.inputs.filter((i) => i.datatype === "FP32").map((i) => i.name);
      row = Object.fromEntries(names.map((n, i) => [n, row[i]]));
    }
    const inputs = {};
    const grid = $("div", { class: "fields" });
    for (const [k, v] of Object.entries(row)) {
      const inp = $("input", { type: typeof v === "number" ? "number" : "text", step: "any", value: String(v) });
      inputs[k] = inp; grid.append(field(k, inp));
    }
    return { el: $("fieldset", {}, $("legend", { text: "Features" }), grid), value: async () => {
      const obj = {};
      for (const [k, inp] of Object.entries(inputs)) {
        if (inp.value === "") continue;
        obj[k] = inp.type === "number" ? Number(inp.value) : inp.value;
      }
      return { name: "rows", shape: [1], datatype: "BYTES", data: [JSON.stringify(obj)] };
    } };
  }

  const PIECES = { K: "♔", Q: "♕", R: "♖", B: "♗", N: "♘", P: "♙", k: "♚", q: "♛", r: "♜", b: "♝", n: "♞", p: "♟" };
  function drawBoard(board, fen, move) {
    board.innerHTML = "";
    const rows = (fen.split(" ")[0] || "").split("/");
    const hl = new Set();
    if (move && move.length >= 4) for (const sq of [move.slice(0, 2), move.slice(2, 4)]) hl.add((8 - Number(sq[1])) * 8 + (sq.charCodeAt(0) - 97));
    for (let r = 0; r < 8; r++) {
      let c = 0;
      for (const ch of rows[r] || "8") {
        if (/\d/.test(ch)) { for (let k = 0; k < Number(ch); k++, c++) board.append(sq(r, c, "")); }
        else { board.append(sq(r, c, PIECES[ch] || "")); c++; }
      }
    }
    function sq(r, c, t) { return $("div", { class: ((r + c) % 2 ? "d" : "l") + (hl.has(r * 8 + c) ? " hl" : ""), text: t }); }
  }

  function drawGrid(request, path) {
    let req; try { req = JSON.parse(request); } catch (e) { return null; }
    const grid = req.grid || []; const cells = new Set((path || []).map((p) => p[0] + "," + p[1]));
    const w = (grid[0] || "").length;
    const box = $("div", { class: "cells", role: "img", "aria-label": "grid with the planned path" });
    box.style.gridTemplateColumns = `repeat(${w}, 22px)`;
    const se = new Set([String(req.start), String(req.goal)]);
    grid.forEach((line, r) => [...line].forEach((ch, c) => {
      const cls = ch !== "." && ch !== "0" ? "wall" : se.has(r + "," + c) ? "se" : cells.has(r + "," + c) ? "path" : "";
      box.append($("div", { class: cls }));
    }));
    return box;
  }

  async function waveform(b64, segments) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const ctx = new (window.OfflineAudioContext || window.webkitOfflineAudioContext)(1, 1, 16000);
    const audio = await ctx.decodeAudioData(bytes.buffer);
    const data = audio.getChannelData(0); const W = 640, H = 100;
    const canvas = $("canvas", { width: String(W), height: String(H), role: "img", "aria-label": "waveform with speech segments" });
    const g = canvas.getContext("2d");
    g.fillStyle = "rgba(17,99,41,.25)";
    for (const [a, b] of segments) g.fillRect((a / audio.duration) * W, 0, ((b - a) / audio.duration) * W, H);
    g.strokeStyle = "#0a58ca"; g.beginPath();
    const step = Math.max(1, Math.floor(data.length / W));
    for (let x = 0; x < W; x++) {
      let m = 0; for (let i = x * step; i < (x + 1) * step && i < data.length; i++) m = Math.max(m, Math.abs(data[i]));
      g.moveTo(x, H / 2 - m * H / 2); g.lineTo(x, H / 2 + m * H / 2);
    }
    g.stroke();
    return canvas;
  }

  function bars(entries) {
    const max = Math.max(1e-9, ...entries.map(([, v]) => Math.abs(v)));
    const t = $("div", { class: "bars", role: "list" });
    for (const [k, v] of entries) {
      const fill = $("span", { class: "fill" + (v < 0 ? " neg" : "") }); fill.style.width = Math.round((Math.abs(v) / max) * 200) + "px";
      t.append($("div", { class: "bar", role: "listitem" }, $("span", { text: `${k}: ${v.toFixed(3)}` }), fill));
    }
    return t;
  }

  function cosine(a, b) { let d = 0, x = 0, y = 0; for (let i = 0; i < a.length; i++) { d += a[i] * b[i]; x += a[i] * a[i]; y += b[i] * b[i]; } return d / Math.sqrt(x * y); }

  async function render(out, cfg, outputs, widgets, req) {
    const o = Object.fromEntries(outputs.map((t) => [t.name, t]));
    const text = (n) => (o[n] ? o[n].data : []);
    out.innerHTML = "";
    if (o.embedding) {
      const rows = req.inputs[0].data; const dim = o.embedding.shape[1]; const vecs = rows.map((_, i) => o.embedding.data.slice(i * dim, (i + 1) * dim));
      const t = $("table", { class: "grid matrix" }, $("caption", { text: "Cosine similarity" }));
      t.append($("tr", {}, $("th", { text: "" }), ...rows.map((_, j) => $("th", { scope: "col", text: "#" + (j + 1) }))));
      vecs.forEach((v, i) => t.append($("tr", {}, $("th", { scope: "row", text: "#" + (i + 1) + " " + rows[i].slice(0, 40) }), ...vecs.map((w) => $("td", { text: cosine(v, w).toFixed(3) })))));
      out.append(t);
    }
    const img = widgets.find((w) => w.kind === "image");
    if (img && (o.boxes || o.faces)) {
      const wrap = $("div", { class: "imgwrap" }); const im = $("img", { src: "data:image/png;base64," + img.current(), alt: "input with detected boxes" });
      if (img.current().startsWith("/9j/")) im.src = "data:image/jpeg;base64," + img.current();
      wrap.append(im); out.append(wrap);
      await im.decode().catch(() => {});
      const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("viewBox", `0 0 ${im.naturalWidth} ${im.naturalHeight}`); svg.setAttribute("aria-hidden", "true");
      const boxes = JSON.parse(text(o.boxes ? "boxes" : "faces")[0] || "[]");
      for (const b of boxes) {
        const pts = b.box ? b.box.map((p) => p.join(",")).join(" ") : `${b.x},${b.y} ${b.x + b.w},${b.y} ${b.x + b.w},${b.y + b.h} ${b.x},${b.y + b.h}`;
        const poly = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
        poly.setAttribute("points", pts); poly.setAttribute("fill", "none"); poly.setAttribute("stroke", "#f0b400"); poly.setAttribute("stroke-width", "2");
        svg.append(poly);
      }
      wrap.append(svg);
      out.append($("p", { text: o.faces ? `${boxes.length} face(s)` : "" }));
    }
    if (o.image_b64) out.append($("img", { src: "data:image/png;base64," + text("image_b64")[0], alt: "generated image", class: "gen", width: "112", height: "112" }));
    if (o.audio && o.audio.parameters && o.audio.parameters.content_encoding === "base64") out.append($("audio", { controls: "", src: "data:audio/wav;base64," + text("audio")[0] }));
    const aud = widgets.find((w) => w.kind === "audio");
    if (o.segments && aud) {
      const segs = JSON.parse(text("segments")[0] || "[]");
      try { out.append(await waveform(aud.current(), segs)); } catch (e) { /* undecodable audio: the table below still shows them */ }
      out.append($("p", { text: "Speech segments (s): " + (segs.map((s) => s.join("–")).join(", ") || "none") }));
    }
    if (o.explanation) {
      const ex = JSON.parse(text("explanation")[0]);
      out.append($("p", { text: `${text("label")[0]} (score ${Number(text("score")[0]).toFixed(3)}); contributions to the log-odds:` }), bars(Object.entries(ex.contributions)));
    }
    const fen = widgets.find((w) => w.fen);
    if (fen && o.move) { const b = $("div", { class: "board", role: "img", "aria-label": "board with the engine's move" }); drawBoard(b, fen.fen(), text("move")[0]); out.append(b); }
    const reqw = req.inputs.find((i) => i.name === "request");
    if (o.path && reqw) { const g = drawGrid(reqw.data[0], JSON.parse(text("path")[0] || "[]")); if (g) out.append(g); }
    // every answer, also as a table of its plain values
    const t = $("table", { class: "grid" }, $("caption", { text: "Outputs" }));
    for (const tns of outputs) {
      if (tns.parameters && tns.parameters.content_encoding === "base64") continue;
      let v = tns.data; if (["embedding", "image_b64"].includes(tns.name)) v = `[${tns.datatype} ${JSON.stringify(tns.shape)}]`;
      else v = v.length > 40 ? JSON.stringify(v.slice(0, 40)) + " …" : (v.length === 1 ? String(v[0]) : JSON.stringify(v));
      t.append($("tr", {}, $("th", { scope: "row", text: tns.name }), $("td", { text: v })));
    }
    out.append(t);
  }

  function v2(root, cfg) {
    const exInputs = cfg.example ? cfg.example.inputs : cfg.inputs.filter((i) => !i.optional).map((i) => ({ name: i.name }));
    const specs = exInputs.map((e) => Object.assign({}, cfg.inputs.find((i) => i.name === e.name) || { name: e.name, datatype: e.datatype, shape: e.shape }));
    const widgets = specs.map((s) => inputWidget(s, exInputs.find((e) => e.name === s.name && e.data), cfg));
    const params = $("input", { type: "text", value: cfg.example && cfg.example.parameters ? JSON.stringify(cfg.example.parameters) : "" });
    const run = $("button", { type: "submit", text: "Run" });
    const out = $("div", { class: "result", "aria-live": "polite", "data-testid": "result" });
    const code = $("div", {});
    const form = $("form", {}, ...widgets.map((w) => w.el), field("Parameters (JSON, optional)", params), run);
    root.append($("div", { class: "play" }, $("div", {}, form, $("h3", { text: "Answer" }), out), code));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      out.classList.remove("error"); out.textContent = "running…"; run.disabled = true;
      try {
        const body = { inputs: await Promise.all(widgets.map((w) => w.value())) };
        if (params.value.trim()) body.parameters = JSON.parse(params.value);
        showCode(code, `/v2/models/${cfg.name}/infer`, body);
        const r = await aiaas.post(`/ui/api/models/${encodeURIComponent(cfg.name)}/infer`, body);
        const j = await r.json();
        await render(out, cfg, j.outputs, widgets, body);
      } catch (err) { out.textContent = err.message; out.classList.add("error"); }
      finally { run.disabled = false; }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("play");
    if (!root) return;
    const cfg = JSON.parse(root.dataset.play);
    if (cfg.backend === "llm" || cfg.task === "text-generation") chat(root, cfg); else v2(root, cfg);
  });
})();

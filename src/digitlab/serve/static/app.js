// digitlab's writing page: Pointer Events on a wide canvas, the number read by POST /api/read.
//
// The canvas is sent as a PNG and read on the server by the same code as `digitlab read`: the digits are
// found, each is prepared like MNIST (to_mnist) and classified, and marks that are not digits are refused.
// Each digit gets a box on the pad and its own probability bars; the 28x28 preview shows the chosen digit
// as the model sees it. Mouse, pen and touch all draw (touch-action: none keeps a finger from scrolling).
// feedback.js (confirming or correcting an answer) and model.js (the footer) are loaded before this file.
"use strict";

(() => {
  const WIDTH = 840, HEIGHT = 280;    // drawing units, and the pixel size of the PNG sent to the server
  const STROKE = Math.round(HEIGHT / 12); // MNIST strokes are ~1/10 of the 20 px digit box; a digit is pad-high
  const THROTTLE_MS = 150;            // at most one reading per 150 ms while drawing
  const MAX_BYTES = 5 * 1024 * 1024;  // the server's body limit; refuse bigger files before uploading

  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");
  const overlay = document.getElementById("overlay");
  const overlayCtx = overlay.getContext("2d");
  const wrap = document.getElementById("dropzone");
  const predictionEl = document.getElementById("prediction");
  const confidenceEl = document.getElementById("confidence");
  const statusEl = document.getElementById("status");
  const barsEl = document.getElementById("probabilities");
  const digitsEl = document.getElementById("digits");
  const previewCaption = document.getElementById("preview-caption");
  const preview = document.getElementById("preview");
  const previewCtx = preview.getContext("2d");
  const fileInput = document.getElementById("file");
  // The pad's own pixels follow its on-screen size (sharp strokes on high-DPI screens); what is sent is
  // always this WIDTH x HEIGHT copy, so the server sees the same picture on every screen.
  const snapshot = document.createElement("canvas");
  snapshot.width = WIDTH;
  snapshot.height = HEIGHT;

  let activePointer = null;  // the pointer drawing now; a second finger is ignored
  let last = null;           // previous point of the stroke
  let hasInk = false;        // anything drawn since the last clear
  let showingUpload = false; // the pad shows an uploaded image; the next stroke starts a fresh drawing
  let timer = null;          // pending throttled reading
  let inFlight = false;      // a request is on its way
  let dirty = false;         // the drawing changed while a request was in flight
  let generation = 0;        // bumped by Clear and uploads, so late answers for old drawings are dropped
  let view = { scale: 1, dx: 0, dy: 0 };  // the sent picture's pixels -> pad units (an upload is fitted in)
  let reading = null;        // the answer on show (POST /api/read's body)
  let selected = 0;          // the digit whose bars and 28x28 input are shown
  // Confirming or correcting the answer on show: feedback.js.
  const feedback = window.digitlabFeedback({ selected: () => selected, selectDigit, showModel: () => showModel() });
  // The footer (model.js); when another model answers, the pad is read again by it.
  const showModel = window.digitlabModelInfo((info) => {
    setStatus(`Now answering with ${info.source}`);
    if (hasInk) readNow();
  });

  // ------------------------------------------------------------------ bars

  function makeBars(list, withLabels) {
    const made = [];
    for (let d = 0; d < 10; d++) {
      const li = document.createElement("li");
      li.dataset.digit = String(d);
      li.innerHTML = withLabels
        ? `<span class="digit">${d}</span><span class="track"><span class="fill"></span></span><span class="value">0%</span>`
        : `<span class="fill"></span>`;
      list.appendChild(li);
      made.push({ li, fill: li.querySelector(".fill"), value: li.querySelector(".value") });
    }
    return made;
  }
  const bars = makeBars(barsEl, true);

  function setState(state) {
    predictionEl.dataset.state = state;
  }

  function showBars(probabilities, best) {
    probabilities.forEach((p, d) => {
      const pct = p * 100;
      bars[d].fill.style.width = `${pct.toFixed(2)}%`;
      bars[d].value.textContent = pct >= 10 ? `${pct.toFixed(0)}%` : `${pct.toFixed(1)}%`;
      bars[d].li.classList.toggle("best", d === best);
      bars[d].li.dataset.probability = p.toFixed(6);
    });
  }

  function showPreview(pixels) {
    const image = previewCtx.createImageData(28, 28);
    pixels.forEach((v, i) => {
      image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = v;
      image.data[4 * i + 3] = 255;
    });
    previewCtx.putImageData(image, 0, 0);
  }

  function showEmpty(message) {
    reading = null;
    predictionEl.textContent = "–";
    predictionEl.classList.remove("refused", "long");
    delete predictionEl.dataset.reason;
    setState("empty");
    confidenceEl.textContent = message || "Draw something to start";
    showBars(new Array(10).fill(0), -1);
    digitsEl.replaceChildren();
    drawBoxes();
    previewCtx.fillStyle = "#000";
    previewCtx.fillRect(0, 0, 28, 28);
    previewCaption.textContent = "What the model sees";
  }

  const argmax = (values) => values.reduce((best, v, i) => (v > values[best] ? i : best), 0);
  const percent = (p) => `${(p * 100).toFixed(1)}%`;

  // The whole number in the prediction element (one digit: that digit); "no digit" for an empty picture,
  // "not a digit" for marks that are no digits, with the server's reason underneath.
  function showResult(result) {
    reading = result;
    selected = Math.max(0, result.digits.findIndex((g) => g.label === null));
    const refused = result.number === "";
    const text = !refused ? result.number : result.digits.length === 0 || result.reason === "blank"
      ? "no digit" : "not a digit";
    predictionEl.textContent = text;
    predictionEl.classList.toggle("refused", refused);
    predictionEl.classList.toggle("long", !refused && text.length > 4);
    if (result.reason) predictionEl.dataset.reason = result.reason;
    else delete predictionEl.dataset.reason;
    confidenceEl.textContent = refused
      ? `Nothing read: ${result.reason || "no digit found"}`
      : `${percent(result.confidence)} sure` + (result.digits.length > 1 ? ` · ${result.digits.length} digits` : "");
    digitsEl.replaceChildren(...result.digits.map(digitItem));
    selectDigit(selected);
    setStatus("");
  }

  // One digit of the answer: its label (or "?"), how sure, and ten small bars; choosing it shows its details.
  function digitItem(digit, k) {
    const li = document.createElement("li");
    li.dataset.index = String(k);
    li.dataset.label = digit.label === null ? "" : String(digit.label);
    li.classList.toggle("refused", digit.label === null);
    const button = document.createElement("button");
    button.type = "button";
    button.title = digit.label === null ? `Not read: ${digit.reason}` : `${digit.label}, ${percent(digit.confidence)} sure`;
    button.innerHTML = `<span class="digit-label">${digit.label === null ? "?" : digit.label}</span>` +
      `<span class="digit-sure">${digit.label === null ? "not read" : percent(digit.confidence)}</span>` +
      `<ol class="mini" aria-hidden="true"></ol>`;
    makeBars(button.querySelector(".mini"), false).forEach((bar, d) => {
      bar.fill.style.height = `${(digit.probabilities[d] * 100).toFixed(1)}%`;
      bar.li.classList.toggle("best", d === digit.label);
    });
    button.addEventListener("click", () => selectDigit(k));
    li.appendChild(button);
    return li;
  }

  function selectDigit(k) {
    if (!reading || !reading.digits.length) {
      showBars(new Array(10).fill(0), -1);
      drawBoxes();
      return;
    }
    selected = k;
    const digit = reading.digits[k];
    showBars(digit.probabilities, digit.label === null ? argmax(digit.probabilities) : digit.label);
    showPreview(digit.preprocessed);
    previewCaption.textContent = reading.digits.length > 1 ? `Digit ${k + 1} as the model sees it` : "What the model sees";
    Array.from(digitsEl.children).forEach((li, i) => li.classList.toggle("selected", i === k));
    drawBoxes();
    feedback.pickerFor(k);
  }

  // A box per digit on the overlay, in the sent picture's pixels mapped onto the pad; refused marks dashed.
  function drawBoxes() {
    const scale = overlay.width / WIDTH;
    overlayCtx.setTransform(1, 0, 0, 1, 0, 0);
    overlayCtx.clearRect(0, 0, overlay.width, overlay.height);
    if (!reading) return;
    overlayCtx.setTransform(scale, 0, 0, scale, 0, 0);
    // Labels stay legible on a phone, where a pad unit is well under a CSS pixel.
    const unitsPerPx = WIDTH / (overlay.getBoundingClientRect().width || WIDTH);
    const fontSize = Math.max(18, 13 * unitsPerPx);
    overlayCtx.font = `600 ${fontSize.toFixed(1)}px ui-sans-serif, system-ui, sans-serif`;
    overlayCtx.textBaseline = "bottom";
    reading.digits.forEach((digit, k) => {
      const [x0, y0, x1, y1] = digit.box.map((v, i) => v * view.scale + (i % 2 ? view.dy : view.dx));
      const refused = digit.label === null;
      const colour = refused ? "#ef4444" : "#818cf8";  // legible on the black pad and on white paper
      overlayCtx.strokeStyle = colour;
      overlayCtx.lineWidth = k === selected && reading.digits.length > 1 ? 3 : 1.5;
      overlayCtx.setLineDash(refused ? [6, 4] : []);
      overlayCtx.strokeRect(x0 - 3, y0 - 3, x1 - x0 + 6, y1 - y0 + 6);
      overlayCtx.fillStyle = colour;
      const tag = refused ? "?" : `${digit.label} ${Math.round(digit.confidence * 100)}%`;
      overlayCtx.fillText(tag, x0 - 3, Math.max(y0 - 5, fontSize));
    });
  }

  function setStatus(message, isError) {
    statusEl.textContent = message;
    statusEl.classList.toggle("error", Boolean(isError));
  }

  // ------------------------------------------------------------------ API

  async function postImage(blob, name) {
    const form = new FormData();
    form.append("file", blob, name);
    const response = await fetch("/api/read", { method: "POST", body: form });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      throw new Error(`server answered ${response.status}`);
    }
    if (!response.ok) throw new Error(body.error || `server answered ${response.status}`);
    return body;
  }

  function schedule() {
    setState("busy");
    feedback.forgetAnswer();  // the drawing changed: the answer on show is no longer the one to confirm
    if (timer === null) timer = setTimeout(() => { timer = null; readDrawing(); }, THROTTLE_MS);
  }

  function readNow() {
    if (timer !== null) { clearTimeout(timer); timer = null; }
    readDrawing();
  }

  async function readDrawing() {
    if (!hasInk) return;
    if (inFlight) { dirty = true; return; }
    inFlight = true;
    dirty = false;
    setState("busy");
    const gen = generation;
    try {
      const small = snapshot.getContext("2d");
      small.imageSmoothingQuality = "high";
      small.drawImage(pad, 0, 0, WIDTH, HEIGHT);
      const blob = await new Promise((resolve) => snapshot.toBlob(resolve, "image/png"));
      const result = await postImage(blob, "drawing.png");
      if (gen === generation) {
        showResult(result);
        if (!dirty) feedback.answered(blob, "drawing.png", result);
      }
    } catch (err) {
      if (gen === generation) { setState("error"); setStatus(err.message, true); }
    } finally {
      inFlight = false;
      // "ready" only once nothing newer is pending: tests and people can trust what is shown.
      if (dirty) readDrawing();
      else if (gen === generation && timer === null && predictionEl.dataset.state === "busy") setState("ready");
    }
  }

  // ------------------------------------------------------------------ drawing

  function penStyle() {
    const scale = pad.width / WIDTH;
    ctx.setTransform(scale, 0, 0, scale, 0, 0);  // draw in WIDTH x HEIGHT units whatever the pixel size
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.lineWidth = STROKE;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
  }

  function resetPad() {
    penStyle();
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, WIDTH, HEIGHT);
    ctx.fillStyle = "#fff";
    hasInk = false;
    showingUpload = false;
    view = { scale: 1, dx: 0, dy: 0 };
    wrap.classList.remove("inked");
  }

  // Match the pad's pixels to its displayed size, keeping what is drawn (resizing a canvas clears it).
  function fitPad() {
    const rect = pad.getBoundingClientRect();
    const pixels = Math.max(WIDTH, Math.round(rect.width * (window.devicePixelRatio || 1)));
    if (!rect.width || pad.width === pixels) return;
    const keep = document.createElement("canvas");
    keep.width = pad.width;
    keep.height = pad.height;
    keep.getContext("2d").drawImage(pad, 0, 0);
    pad.width = overlay.width = pixels;
    pad.height = overlay.height = Math.round(pixels * HEIGHT / WIDTH);
    penStyle();
    ctx.drawImage(keep, 0, 0, WIDTH, HEIGHT);
    drawBoxes();
  }
  let fitQueued = false;
  window.addEventListener("resize", () => {
    if (!fitQueued) {
      fitQueued = true;
      requestAnimationFrame(() => { fitQueued = false; fitPad(); });
    }
  });

  function clearAll() {
    generation++;
    feedback.forgetAnswer();
    if (timer !== null) { clearTimeout(timer); timer = null; }
    dirty = false;
    resetPad();
    showEmpty();
    setStatus("");
  }

  function toCanvas(event) {
    const rect = pad.getBoundingClientRect();
    return [(event.clientX - rect.left) * (WIDTH / rect.width), (event.clientY - rect.top) * (HEIGHT / rect.height)];
  }

  function dot([x, y]) {
    ctx.beginPath();
    ctx.arc(x, y, STROKE / 2, 0, 2 * Math.PI);
    ctx.fill();
  }

  function segment([x0, y0], [x1, y1]) {
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    ctx.stroke();
  }

  pad.addEventListener("pointerdown", (event) => {
    if (activePointer !== null || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    if (showingUpload) { generation++; resetPad(); feedback.forgetAnswer(); showEmpty(); }
    activePointer = event.pointerId;
    try {
      pad.setPointerCapture(event.pointerId);  // keep the stroke when the pointer leaves the pad
    } catch (_) {
      // The pointer is already gone (e.g. a synthetic event); the stroke still works within the pad.
    }
    last = toCanvas(event);
    dot(last);
    hasInk = true;
    wrap.classList.add("inked");
    schedule();
  });

  pad.addEventListener("pointermove", (event) => {
    if (event.pointerId !== activePointer) return;
    // Coalesced events keep fast strokes smooth: the browser batches moves between frames.
    const events = typeof event.getCoalescedEvents === "function" ? event.getCoalescedEvents() : [];
    for (const e of events.length ? events : [event]) {
      const point = toCanvas(e);
      segment(last, point);
      last = point;
    }
    schedule();
  });

  function endStroke(event) {
    if (event.pointerId !== activePointer) return;
    activePointer = null;
    last = null;
    readNow();
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
  pad.addEventListener("contextmenu", (event) => event.preventDefault());

  document.getElementById("clear").addEventListener("click", clearAll);
  document.addEventListener("keydown", (event) => {
    if ((event.key === "Escape" || event.key === "Delete") && !event.ctrlKey && !event.metaKey) clearAll();
  });

  // ------------------------------------------------------------------ uploads

  // The picture fitted into the pad; `view` maps its pixels (the boxes /api/read answers) onto the pad.
  async function showUpload(file) {
    resetPad();
    try {
      const bitmap = await createImageBitmap(file);
      const scale = Math.min(WIDTH / bitmap.width, HEIGHT / bitmap.height);
      const w = bitmap.width * scale;
      const h = bitmap.height * scale;
      view = { scale, dx: (WIDTH - w) / 2, dy: (HEIGHT - h) / 2 };
      ctx.drawImage(bitmap, view.dx, view.dy, w, h);
      bitmap.close();
    } catch (_) {
      // Not something the browser can draw; the server's answer below says what is wrong with it.
    }
    showingUpload = true;
    wrap.classList.add("inked");
  }

  async function readFile(file) {
    if (!file) return;
    clearAll();
    const gen = generation;
    if (file.size > MAX_BYTES) {
      showEmpty();
      setState("error");
      setStatus(`${file.name} is larger than 5 MB`, true);
      return;
    }
    setState("busy");
    setStatus(`Reading ${file.name}…`);
    await showUpload(file);
    try {
      const result = await postImage(file, file.name || "upload");
      if (gen === generation) {
        showResult(result);
        feedback.answered(file, file.name || "upload", result);
        setState("ready");
        setStatus(`Uploaded: ${file.name}`);
      }
    } catch (err) {
      if (gen === generation) { setState("error"); setStatus(err.message, true); }
    }
  }

  fileInput.addEventListener("change", () => {
    readFile(fileInput.files[0]);
    fileInput.value = "";  // choosing the same file again should still fire `change`
  });

  // A file dropped anywhere on the page must not make the browser navigate to it.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
  wrap.addEventListener("dragenter", (event) => { event.preventDefault(); wrap.classList.add("dragging"); });
  wrap.addEventListener("dragover", (event) => { event.preventDefault(); wrap.classList.add("dragging"); });
  wrap.addEventListener("dragleave", () => wrap.classList.remove("dragging"));
  wrap.addEventListener("drop", (event) => {
    event.preventDefault();
    wrap.classList.remove("dragging");
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) readFile(file);
  });

  resetPad();
  fitPad();
  showEmpty();
  showModel();
  feedback.load();
})();

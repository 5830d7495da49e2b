// digitlab's drawing page: Pointer Events on a canvas, live predictions from POST /api/predict.
//
// The canvas is sent as a PNG and preprocessed on the server by the same code as `digitlab predict`
// (to_mnist); the 28x28 preview shows the result, so what you see is exactly what the model saw.
"use strict";

(() => {
  const SIDE = 280;                  // drawing units, and the pixel size of the PNG sent to the server
  const STROKE = Math.round(SIDE / 12); // MNIST strokes are ~1/10 of the 20 px digit box
  const THROTTLE_MS = 150;           // at most one prediction per 150 ms while drawing
  const MAX_BYTES = 5 * 1024 * 1024; // the server's body limit; refuse bigger files before uploading

  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");
  const wrap = document.getElementById("dropzone");
  const predictionEl = document.getElementById("prediction");
  const confidenceEl = document.getElementById("confidence");
  const statusEl = document.getElementById("status");
  const barsEl = document.getElementById("probabilities");
  const preview = document.getElementById("preview");
  const previewCtx = preview.getContext("2d");
  const fileInput = document.getElementById("file");
  // The pad's own pixels follow its on-screen size (sharp strokes on high-DPI screens); what is sent is
  // always this SIDE x SIDE copy, so the server sees the same image on every screen.
  const snapshot = document.createElement("canvas");
  snapshot.width = snapshot.height = SIDE;

  let activePointer = null;  // the pointer drawing now; a second finger is ignored
  let last = null;           // previous point of the stroke
  let hasInk = false;        // anything drawn since the last clear
  let showingUpload = false; // the pad shows an uploaded image; the next stroke starts a fresh drawing
  let timer = null;          // pending throttled prediction
  let inFlight = false;      // a request is on its way
  let dirty = false;         // the drawing changed while a request was in flight
  let generation = 0;        // bumped by Clear and uploads, so late answers for old drawings are dropped

  // ------------------------------------------------------------------ bars

  const bars = [];
  for (let d = 0; d < 10; d++) {
    const li = document.createElement("li");
    li.dataset.digit = String(d);
    li.innerHTML = `<span class="digit">${d}</span><span class="track"><span class="fill"></span></span>` +
      `<span class="value">0%</span>`;
    barsEl.appendChild(li);
    bars.push({ li, fill: li.querySelector(".fill"), value: li.querySelector(".value") });
  }

  function setState(state) {
    predictionEl.dataset.state = state;
  }

  function showEmpty(message) {
    predictionEl.textContent = "–";
    setState("empty");
    confidenceEl.textContent = message || "Draw something to start";
    bars.forEach((b) => {
      b.fill.style.width = "0%";
      b.value.textContent = "0%";
      b.li.classList.remove("best");
      b.li.dataset.probability = "0";
    });
    previewCtx.fillStyle = "#000";
    previewCtx.fillRect(0, 0, 28, 28);
  }

  function showResult(result) {
    predictionEl.textContent = String(result.label);
    confidenceEl.textContent = `${(result.confidence * 100).toFixed(1)}% sure`;
    result.probabilities.forEach((p, d) => {
      const pct = p * 100;
      bars[d].fill.style.width = `${pct.toFixed(2)}%`;
      bars[d].value.textContent = pct >= 10 ? `${pct.toFixed(0)}%` : `${pct.toFixed(1)}%`;
      bars[d].li.classList.toggle("best", d === result.label);
      bars[d].li.dataset.probability = p.toFixed(6);
    });
    const image = previewCtx.createImageData(28, 28);
    result.preprocessed.forEach((v, i) => {
      image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = v;
      image.data[4 * i + 3] = 255;
    });
    previewCtx.putImageData(image, 0, 0);
    setStatus("");
  }

  function setStatus(message, isError) {
    statusEl.textContent = message;
    statusEl.classList.toggle("error", Boolean(isError));
  }

  // ------------------------------------------------------------------ API

  async function postImage(blob, name) {
    const form = new FormData();
    form.append("file", blob, name);
    const response = await fetch("/api/predict", { method: "POST", body: form });
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
    forgetAnswer();  // the drawing changed: the answer on show is no longer the one to confirm
    if (timer === null) timer = setTimeout(() => { timer = null; predictDrawing(); }, THROTTLE_MS);
  }

  function predictNow() {
    if (timer !== null) { clearTimeout(timer); timer = null; }
    predictDrawing();
  }

  async function predictDrawing() {
    if (!hasInk) return;
    if (inFlight) { dirty = true; return; }
    inFlight = true;
    dirty = false;
    setState("busy");
    const gen = generation;
    try {
      const small = snapshot.getContext("2d");
      small.imageSmoothingQuality = "high";
      small.drawImage(pad, 0, 0, SIDE, SIDE);
      const blob = await new Promise((resolve) => snapshot.toBlob(resolve, "image/png"));
      const result = await postImage(blob, "drawing.png");
      if (gen === generation) {
        showResult(result);
        if (!dirty) answered(blob, "drawing.png", result);
      }
    } catch (err) {
      if (gen === generation) { setState("error"); setStatus(err.message, true); }
    } finally {
      inFlight = false;
      // "ready" only once nothing newer is pending: tests and people can trust what is shown.
      if (dirty) predictDrawing();
      else if (gen === generation && timer === null && predictionEl.dataset.state === "busy") setState("ready");
    }
  }

  // ------------------------------------------------------------------ drawing

  function penStyle() {
    const scale = pad.width / SIDE;
    ctx.setTransform(scale, 0, 0, scale, 0, 0);  // draw in SIDE units whatever the pixel size
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.lineWidth = STROKE;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
  }

  function resetPad() {
    penStyle();
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, SIDE, SIDE);
    ctx.fillStyle = "#fff";
    hasInk = false;
    showingUpload = false;
    wrap.classList.remove("inked");
  }

  // Match the pad's pixels to its displayed size, keeping what is drawn (resizing a canvas clears it).
  function fitPad() {
    const rect = pad.getBoundingClientRect();
    const pixels = Math.max(SIDE, Math.round(rect.width * (window.devicePixelRatio || 1)));
    if (!rect.width || pad.width === pixels) return;
    const keep = document.createElement("canvas");
    keep.width = pad.width;
    keep.height = pad.height;
    keep.getContext("2d").drawImage(pad, 0, 0);
    pad.width = pad.height = pixels;
    penStyle();
    ctx.drawImage(keep, 0, 0, SIDE, SIDE);
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
    forgetAnswer();
    if (timer !== null) { clearTimeout(timer); timer = null; }
    dirty = false;
    resetPad();
    showEmpty();
    setStatus("");
  }

  function toCanvas(event) {
    const rect = pad.getBoundingClientRect();
    return [(event.clientX - rect.left) * (SIDE / rect.width), (event.clientY - rect.top) * (SIDE / rect.height)];
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
    if (showingUpload) { generation++; resetPad(); forgetAnswer(); }
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
    predictNow();
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
  pad.addEventListener("contextmenu", (event) => event.preventDefault());

  document.getElementById("clear").addEventListener("click", clearAll);
  document.addEventListener("keydown", (event) => {
    if ((event.key === "Escape" || event.key === "Delete") && !event.ctrlKey && !event.metaKey) clearAll();
  });

  // ------------------------------------------------------------------ uploads

  async function showUpload(file) {
    resetPad();
    try {
      const bitmap = await createImageBitmap(file);
      const scale = Math.min(SIDE / bitmap.width, SIDE / bitmap.height);
      const w = bitmap.width * scale;
      const h = bitmap.height * scale;
      ctx.drawImage(bitmap, (SIDE - w) / 2, (SIDE - h) / 2, w, h);
      bitmap.close();
    } catch (_) {
      // Not something the browser can draw; the server's answer below says what is wrong with it.
    }
    showingUpload = true;
    wrap.classList.add("inked");
  }

  async function predictFile(file) {
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
        answered(file, file.name || "upload", result);
        setState("ready");
        setStatus(`Uploaded: ${file.name}`);
      }
    } catch (err) {
      if (gen === generation) { setState("error"); setStatus(err.message, true); }
    }
  }

  fileInput.addEventListener("change", () => {
    predictFile(fileInput.files[0]);
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
    if (file) predictFile(file);
  });

  // ------------------------------------------------------------------ corrections (POST /api/feedback)
  // After each answer the user confirms it or picks the right digit; the picture that was answered goes to
  // the server with the label, which saves it as a training sample (`digitlab serve --feedback DIR`). An
  // answer is a list of digits, each {predicted, box}: on this page one digit without a box (the whole
  // picture); a number read by /api/read has one entry per digit, each with its own label, sent as `digits`.

  const teachEl = document.getElementById("teach");
  const confirmBtn = document.getElementById("confirm");
  const pickerEl = document.getElementById("picker");
  const teachStatusEl = document.getElementById("teach-status");
  const countEl = document.getElementById("feedback-count");
  const commandEl = document.getElementById("finetune-command");
  const useBtn = document.getElementById("use-finetuned");
  const picks = [];
  let answer = null;       // {blob, name, digits: [{predicted, box}], saved}: the answer on show
  let feedbackOn = false;  // the server saves feedback (GET /api/feedback says so)
  let finetuned = null;    // the folder the fine-tune command writes, which "Use" switches to

  for (let d = 0; d < 10; d++) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = String(d);
    button.dataset.testid = `correct-${d}`;
    button.setAttribute("aria-label", `No, it is ${d}`);
    button.disabled = true;
    button.addEventListener("click", () => sendFeedback([d]));
    pickerEl.appendChild(button);
    picks.push(button);
  }
  confirmBtn.addEventListener("click", () => { if (answer) sendFeedback(answer.digits.map((g) => g.predicted)); });

  function teachStatus(message, isError) {
    teachStatusEl.textContent = message;
    teachStatusEl.classList.toggle("error", Boolean(isError));
  }

  function setTeachEnabled(on) {
    confirmBtn.disabled = !on;
    picks.forEach((b) => { b.disabled = !on; });
  }

  function answered(blob, name, result) {
    answer = { blob, name, digits: [{ predicted: result.label, box: null }], saved: false };
    picks.forEach((b) => b.classList.remove("chosen"));
    confirmBtn.textContent = `Yes, ${result.label}`;
    setTeachEnabled(feedbackOn);
    teachStatus("");
  }

  function forgetAnswer() {
    answer = null;
    setTeachEnabled(false);
    picks.forEach((b) => b.classList.remove("chosen"));
    confirmBtn.textContent = "Yes";
    teachStatus("");
  }

  async function sendFeedback(labels) {
    if (!answer || answer.saved) return;
    const sending = answer;
    setTeachEnabled(false);
    teachStatus("Saving…");
    const form = new FormData();
    form.append("file", sending.blob, sending.name);
    if (sending.digits.length === 1 && !sending.digits[0].box) {
      form.append("label", String(labels[0]));
      form.append("predicted", String(sending.digits[0].predicted));
    } else {
      form.append("digits", JSON.stringify(sending.digits.map((g, k) => (
        { label: labels[k], predicted: g.predicted, box: g.box }))));
    }
    try {
      const response = await fetch("/api/feedback", { method: "POST", body: form });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.error || `server answered ${response.status}`);
      sending.saved = true;
      if (answer !== sending) return;  // the drawing changed meanwhile; the sample is saved all the same
      if (labels.length === 1) picks[labels[0]].classList.add("chosen");
      const same = labels.every((label, k) => label === sending.digits[k].predicted);
      teachStatus(same ? `Saved: confirmed ${labels.join("")}` : `Saved as ${labels.join("")}`);
      teachEl.dataset.saved = body.ids.join(" ");
      showCounts(body.counts);
    } catch (err) {
      if (answer === sending) setTeachEnabled(true);
      teachStatus(err.message, true);
    }
  }

  function showCounts(counts) {
    const total = counts.total;
    countEl.textContent = total === 0 ? "No samples saved yet" : `${total} sample${total === 1 ? "" : "s"} saved`;
    countEl.dataset.total = String(total);
  }

  async function loadFeedback() {
    try {
      const info = await (await fetch("/api/feedback")).json();
      feedbackOn = Boolean(info.enabled);
      teachEl.hidden = !feedbackOn;
      if (!feedbackOn) return;
      commandEl.textContent = info.command;
      finetuned = info.output;
      useBtn.textContent = `Use ${finetuned}`;
      showCounts(info.counts);
      if (answer && !answer.saved) setTeachEnabled(true);
    } catch (_) {
      teachEl.hidden = true;
    }
  }

  useBtn.addEventListener("click", async () => {
    useBtn.disabled = true;
    teachStatus(`Loading ${finetuned}…`);
    try {
      const response = await fetch("/api/model", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ model: finetuned }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.status === 404) throw new Error(`No model in ${finetuned} yet: run the command above first`);
      if (!response.ok) throw new Error(body.error || `server answered ${response.status}`);
      teachStatus(`Now answering with ${finetuned}`);
      await showModel();
    } catch (err) {
      teachStatus(err.message, true);
    } finally {
      useBtn.disabled = false;
    }
  });

  // ------------------------------------------------------------------ footer

  // The model can change under the page (POST /api/model, or its folder reloaded after a fine-tune), so
  // the footer is refreshed every few seconds while the page is visible; asking is also what lets the server
  // notice a changed model folder when nobody is drawing.
  const MODEL_POLL_MS = 5000;
  let shownModel = null;  // loaded_at + sha256 of the model the footer describes

  // "shipped (strong.safetensors)" stays; a path is shortened to its last two parts: runs/my-handwriting.
  function sourceLabel(source) {
    return source.startsWith("shipped") ? source : source.split(/[\\/]/).filter(Boolean).slice(-2).join("/");
  }

  function describeModel(info) {
    const parts = [`Model: ${info.arch}`, sourceLabel(String(info.source))];
    if (info.parameters) parts.push(`${info.parameters.toLocaleString("en-US")} parameters`);
    if (typeof info.accuracy === "number") parts.push(`${(info.accuracy * 100).toFixed(2)}% MNIST test accuracy`);
    parts.push(`${info.engine} engine`, `digitlab ${info.version}`);
    return parts.join(" · ");
  }

  async function showModel() {
    const el = document.getElementById("model-info");
    try {
      const info = await (await fetch("/api/model")).json();
      const id = `${info.loaded_at} ${info.sha256}`;
      if (id === shownModel) return info;
      const changed = shownModel !== null;
      shownModel = id;
      el.textContent = describeModel(info);
      el.title = `${info.source} · loaded ${info.loaded_at} · sha256 ${String(info.sha256).slice(0, 12)}`;
      el.dataset.source = info.source;
      el.dataset.sha256 = info.sha256;
      if (changed) {
        setStatus(`Now answering with ${info.source}`);
        if (hasInk) predictNow();  // show the new model's answer for what is on the pad
      }
      return info;
    } catch (_) {
      el.textContent = "Model information unavailable";
      return null;
    }
  }
  setInterval(() => { if (document.visibilityState === "visible") showModel(); }, MODEL_POLL_MS);

  resetPad();
  fitPad();
  showEmpty();
  showModel();
  loadFeedback();
})();

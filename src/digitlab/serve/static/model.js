// digitlab's page, footer: which model answers (GET /api/model).
//
// The model can change under the page (POST /api/model, or its folder reloaded after a fine-tune), so
// the footer is refreshed every few seconds while the page is visible; asking is also what lets the server
// notice a changed model folder when nobody is drawing. app.js makes it with `digitlabModelInfo(onChange)`,
// `onChange(info)` being called when another model answers; the function returned shows the model now.
"use strict";

window.digitlabModelInfo = (onChange) => {
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
      if (changed) onChange(info);
      return info;
    } catch (_) {
      el.textContent = "Model information unavailable";
      return null;
    }
  }
  setInterval(() => { if (document.visibilityState === "visible") showModel(); }, MODEL_POLL_MS);

  return showModel;
};

// Renders /openapi.json as a plain reference page, so /docs works without internet access.
"use strict";

(async () => {
  const root = document.getElementById("api");
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
    children.forEach((c) => node.append(c));
    return node;
  };
  // Resolve local "$ref"s so each schema reads on its own.
  const resolve = (spec, value, depth = 0) => {
    if (depth > 8 || value === null || typeof value !== "object") return value;
    if (Array.isArray(value)) return value.map((v) => resolve(spec, v, depth + 1));
    if (typeof value.$ref === "string" && value.$ref.startsWith("#/")) {
      const target = value.$ref.slice(2).split("/").reduce((o, k) => (o || {})[k], spec);
      return resolve(spec, target, depth + 1);
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(spec, v, depth + 1)]));
  };
  const schemaBlock = (spec, schema) => {
    const details = el("details", {}, el("summary", {}, "schema"));
    details.append(el("pre", {}, JSON.stringify(resolve(spec, schema), null, 2)));
    return details;
  };

  let spec;
  try {
    spec = await (await fetch("/openapi.json")).json();
  } catch (err) {
    root.textContent = `Could not load /openapi.json: ${err.message}`;
    return;
  }
  root.replaceChildren(el("p", { class: "intro" }, `${spec.info.title} ${spec.info.version}. ${spec.info.description || ""}`));
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const card = el("section", { class: "op" },
        el("h2", {}, el("span", { class: `method ${method}` }, method.toUpperCase()), path));
      if (op.summary) card.append(el("p", { class: "summary" }, op.summary));
      if (op.description) card.append(el("p", { class: "desc" }, op.description));
      const body = op.requestBody && op.requestBody.content;
      if (body) {
        card.append(el("h3", {}, "Request body"));
        const table = el("table");
        for (const [type, media] of Object.entries(body)) {
          table.append(el("tr", {}, el("td", {}, type), el("td", {}, schemaBlock(spec, media.schema))));
        }
        card.append(table);
      }
      card.append(el("h3", {}, "Responses"));
      const table = el("table");
      for (const [code, response] of Object.entries(op.responses || {})) {
        const media = response.content && response.content["application/json"];
        table.append(el("tr", {}, el("td", {}, code),
          el("td", {}, response.description || "", media ? schemaBlock(spec, media.schema) : "")));
      }
      card.append(table);
      root.append(card);
    }
  }
})();

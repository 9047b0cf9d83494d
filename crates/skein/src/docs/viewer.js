// Skein's API reference viewer: reads /api/openapi.json and lists every operation by tag.
// Served from the binary so /api/docs loads no third-party script; it builds the page with
// DOM calls and textContent only, so nothing in the document can inject markup.
"use strict";
(function () {
  const root = document.getElementById("app");
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) {
      if (c == null) continue;
      node.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  };
  const resolve = (doc, schema, depth) => {
    if (!schema || typeof schema !== "object" || depth > 6) return schema;
    if (typeof schema.$ref === "string") {
      const name = schema.$ref.split("/").pop();
      const target = (doc.components && doc.components.schemas && doc.components.schemas[name]) || {};
      return resolve(doc, target, depth + 1);
    }
    if (Array.isArray(schema)) return schema.map((s) => resolve(doc, s, depth + 1));
    const out = {};
    for (const [k, v] of Object.entries(schema)) out[k] = resolve(doc, v, depth + 1);
    return out;
  };
  const schemaBlock = (doc, schema) =>
    el("pre", {}, JSON.stringify(resolve(doc, schema, 0), null, 2));
  const operation = (doc, method, path, op) => {
    const body = el("div", { class: "op-body" });
    if (op.description) body.append(el("p", {}, op.description));
    const params = op.parameters || [];
    if (params.length) {
      const list = el("ul");
      for (const p of params) {
        list.append(el("li", {}, el("code", {}, p.name), ` (${p.in}${p.required ? ", required" : ""}) `, p.description || ""));
      }
      body.append(el("h4", {}, "Parameters"), list);
    }
    const content = op.requestBody && op.requestBody.content;
    if (content) {
      for (const [type, media] of Object.entries(content)) {
        body.append(el("h4", {}, `Request body (${type})`), schemaBlock(doc, media.schema));
      }
    }
    body.append(el("h4", {}, "Responses"));
    for (const [status, res] of Object.entries(op.responses || {})) {
      const item = el("div", { class: "response" }, el("strong", {}, status), " ", res.description || "");
      const json = res.content && res.content["application/json"];
      if (json && json.schema) item.append(schemaBlock(doc, json.schema));
      body.append(item);
    }
    return el(
      "details",
      { class: "op" },
      el("summary", {}, el("span", { class: `method ${method}` }, method.toUpperCase()), " ", el("code", {}, path), " ", op.summary || ""),
      body,
    );
  };
  fetch("/api/openapi.json")
    .then((r) => r.json())
    .then((doc) => {
      root.textContent = "";
      root.append(el("h1", {}, `${doc.info.title} ${doc.info.version}`));
      if (doc.info.description) root.append(el("p", {}, doc.info.description));
      root.append(el("p", {}, "Raw document: ", el("a", { href: "/api/openapi.json" }, "/api/openapi.json")));
      const byTag = new Map();
      for (const [path, item] of Object.entries(doc.paths || {})) {
        for (const [method, op] of Object.entries(item)) {
          if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
          const tag = (op.tags && op.tags[0]) || "other";
          if (!byTag.has(tag)) byTag.set(tag, []);
          byTag.get(tag).push(operation(doc, method, path, op));
        }
      }
      // Tags in the order the document declares them, then any it does not.
      const tags = new Map((doc.tags || []).map((t) => [t.name, t.description || ""]));
      const order = [...tags.keys(), ...[...byTag.keys()].filter((t) => !tags.has(t))];
      for (const tag of order) {
        const ops = byTag.get(tag);
        if (!ops) continue;
        root.append(el("h2", {}, tag), el("p", { class: "muted" }, tags.get(tag) || ""), ...ops);
      }
    })
    .catch((e) => {
      root.textContent = `Cannot load /api/openapi.json: ${e}`;
    });
})();

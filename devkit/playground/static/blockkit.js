// Block Kit as Slack draws it, for the blocks and elements jitbot sends; anything else is shown as unsupported, never dropped.
"use strict";

const EMOJI = {
  hourglass: "⌛", hourglass_flowing_sand: "⏳", rotating_light: "🚨", lock: "🔒", unlock: "🔓", key: "🔑",
  white_check_mark: "✅", x: "❌", warning: "⚠️", no_entry: "⛔", no_entry_sign: "🚫", bell: "🔔",
  green_circle: "🟢", red_circle: "🔴", large_green_circle: "🟢", yellow_circle: "🟡", white_circle: "⚪",
  black_circle: "⚫", stopwatch: "⏱️", alarm_clock: "⏰", clock1: "🕐", mag: "🔍", page_facing_up: "📄",
  memo: "📝", information_source: "ℹ️", arrows_counterclockwise: "🔄", wave: "👋", eyes: "👀", point_right: "👉",
  heavy_check_mark: "✔️", octagonal_sign: "🛑", fire: "🔥", shield: "🛡️", closed_lock_with_key: "🔐",
  hourglass_done: "⌛", repeat: "🔁", inbox_tray: "📥", outbox_tray: "📤", ticket: "🎫", pager: "📟",
};

function esc(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

// Slack sends &lt; &gt; &amp; for the three control characters; the rest of the text is literal.
function unescapeSlack(s) {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

// Safe by construction: Slack markup becomes placeholders holding escaped HTML; the rest is HTML-escaped before formatting.
function inline(text, names, pre) {
  const tokens = [];
  const hold = (html) => { tokens.push(html); return `\u0000${tokens.length - 1}\u0000`; };
  let s = text.replace(/<([^<>|]+)(?:\|([^<>]*))?>/g, (_, target, label) => {
    if (target.startsWith("@")) return hold(`<span class="mention">@${esc(names[target.slice(1)] || label || target.slice(1))}</span>`);
    if (target.startsWith("#")) return hold(`<span class="mention">#${esc(unescapeSlack(label || target.slice(1)))}</span>`);
    if (target.startsWith("!subteam^")) return hold(`<span class="mention">@${esc(unescapeSlack(label || target.slice(9)))}</span>`);
    if (target.startsWith("!date")) return hold(esc(unescapeSlack(label || "")));
    if (target.startsWith("!")) return hold(`<span class="mention">@${esc(target.slice(1))}</span>`);
    if (/^(https?|mailto):/.test(target)) {
      return hold(`<a href="${esc(target)}" target="_blank" rel="noopener noreferrer">${esc(unescapeSlack(label || target))}</a>`);
    }
    return hold(esc(unescapeSlack(target)));  // not markup Slack knows: shown as typed
  });
  s = esc(unescapeSlack(s));
  if (!pre) {
    s = s.replace(/`([^`\n]+)`/g, (_, c) => hold(`<code>${c}</code>`));
    s = s.replace(/(^|[\s(>])\*([^*\n]+)\*(?=$|[\s).,:;!?<])/g, "$1<b>$2</b>");
    s = s.replace(/(^|[\s(>])_([^_\n]+)_(?=$|[\s).,:;!?<])/g, "$1<i>$2</i>");
    s = s.replace(/(^|[\s(>])~([^~\n]+)~(?=$|[\s).,:;!?<])/g, "$1<s>$2</s>");
    s = s.replace(/:([a-z0-9_+-]+):/g, (m, name) => EMOJI[name] || m);
  }
  while (/\u0000\d+\u0000/.test(s)) s = s.replace(/\u0000(\d+)\u0000/g, (_, i) => tokens[Number(i)]);  // nested (code in a link)
  return s;
}

function mrkdwn(text, names) {
  return String(text).split("```").map((part, i) => {
    if (i % 2 === 1) return `<pre class="bk-pre">${inline(part.replace(/^\n/, "").replace(/\n$/, ""), names, true)}</pre>`;
    return part.split("\n").map((line) => (line.startsWith(">")
      ? `<span class="bk-quote">${inline(line.slice(1), names, false)}</span>`
      : inline(line, names, false))).join("<br>");
  }).join("");
}

function el(tag, cls, html) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (html !== undefined) node.innerHTML = html;
  return node;
}

function textObject(obj, names) {
  if (!obj) return "";
  return obj.type === "mrkdwn" ? mrkdwn(obj.text || "", names) : esc(obj.text || "").replace(/:([a-z0-9_+-]+):/g, (m, n) => (obj.emoji === false ? m : EMOJI[n] || m));
}

function unsupported(kind, what, obj) {
  const node = el("div", "bk-unsupported");
  node.textContent = `[unsupported ${kind}: ${what}]`;
  node.title = JSON.stringify(obj).slice(0, 2000);
  return node;
}

function button(element, blockId, ctx) {
  const node = el("button", `bk-button ${element.style || ""}`.trim(), textObject(element.text, ctx.names));
  node.type = "button";
  node.dataset.actionId = element.action_id || "";
  if (element.value !== undefined) node.dataset.value = element.value;
  node.addEventListener("click", () => {
    if (element.url) window.open(element.url, "_blank", "noopener,noreferrer");
    ctx.onAction(element, blockId, {}, node);
  });
  return node;
}

function select(element, blockId, ctx, inInput) {
  const node = el("select", "bk-select");
  node.dataset.actionId = element.action_id || "";
  const placeholder = el("option", "", esc((element.placeholder && element.placeholder.text) || "Select an option"));
  placeholder.value = "";
  node.appendChild(placeholder);
  const all = [...(element.options || []), ...((element.option_groups || []).flatMap((g) => g.options || []))];
  all.forEach((option) => {
    const o = el("option");
    o.value = option.value;
    o.textContent = option.text.text + (option.description ? ` — ${option.description.text}` : "");
    node.appendChild(o);
  });
  const chosen = inInput ? ctx.state.get(blockId, element.action_id) : null;
  const initial = chosen ? chosen.selected_option : element.initial_option;
  if (initial) node.value = initial.value;
  node.addEventListener("change", () => {
    const option = all.find((o) => o.value === node.value);
    const selected = option ? { text: option.text, value: option.value } : null;
    if (inInput) ctx.state.set(blockId, element.action_id, { type: element.type, selected_option: selected });
    else if (selected) ctx.onAction(element, blockId, { selected_option: selected }, node);
  });
  if (inInput && initial && !chosen) {
    ctx.state.set(blockId, element.action_id, { type: element.type, selected_option: { text: initial.text, value: initial.value } });
  }
  return node;
}

function textInput(element, blockId, ctx, id) {
  const node = el(element.multiline ? "textarea" : "input", "bk-input");
  if (!element.multiline) node.type = "text";
  node.id = id;
  if (element.max_length) node.maxLength = element.max_length;
  if (element.placeholder) node.placeholder = element.placeholder.text;
  const typed = ctx.state.get(blockId, element.action_id);
  node.value = typed ? typed.value || "" : element.initial_value || "";
  const keep = () => ctx.state.set(blockId, element.action_id, { type: "plain_text_input", value: node.value });
  node.addEventListener("input", keep);
  keep();
  return node;
}

function element(element, blockId, ctx) {
  switch (element.type) {
    case "button": return button(element, blockId, ctx);
    case "static_select": return select(element, blockId, ctx, false);
    case "mrkdwn": case "plain_text": return el("span", "bk-text", textObject(element, ctx.names));
    case "image": { const node = el("span", "bk-image"); node.textContent = `[image: ${element.alt_text || ""}]`; return node; }
    default: return unsupported("element", element.type, element);
  }
}

function inputBlock(block, ctx) {
  const node = el("div", "bk-input-block");
  const id = `in-${ctx.idPrefix}-${block.block_id}`;
  const label = el("label", "bk-label", esc(block.label.text) + (block.optional ? ' <span class="bk-optional">(optional)</span>' : ""));
  label.htmlFor = id;
  node.appendChild(label);
  const inner = block.element || {};
  if (inner.type === "plain_text_input") node.appendChild(textInput(inner, block.block_id, ctx, id));
  else if (inner.type === "static_select") { const s = select(inner, block.block_id, ctx, true); s.id = id; node.appendChild(s); }
  else node.appendChild(unsupported("element", inner.type, inner));
  if (block.hint) node.appendChild(el("div", "bk-hint", textObject(block.hint, ctx.names)));
  const error = ctx.errors && ctx.errors[block.block_id];
  if (error) { const e = el("div", "bk-error", mrkdwn(error, ctx.names)); e.setAttribute("role", "alert"); node.appendChild(e); }
  return node;
}

function renderBlock(block, ctx) {
  switch (block.type) {
    case "section": {
      const node = el("div", "bk-section");
      const body = el("div", "bk-section-body");
      if (block.text) body.appendChild(el("div", "bk-section-text", textObject(block.text, ctx.names)));
      if (block.fields) {
        const grid = el("div", "bk-fields");
        block.fields.forEach((f) => grid.appendChild(el("div", "bk-field", textObject(f, ctx.names))));
        body.appendChild(grid);
      }
      node.appendChild(body);
      if (block.accessory) node.appendChild(element(block.accessory, block.block_id, ctx));
      return node;
    }
    case "header": return el("h3", "bk-header", textObject(block.text, ctx.names));
    case "divider": return el("hr", "bk-divider");
    case "context": {
      const node = el("div", "bk-context");
      (block.elements || []).forEach((e) => node.appendChild(element(e, block.block_id, ctx)));
      return node;
    }
    case "actions": {
      const node = el("div", "bk-actions");
      (block.elements || []).forEach((e) => node.appendChild(element(e, block.block_id, ctx)));
      return node;
    }
    case "input": return inputBlock(block, ctx);
    case "image": { const node = el("div", "bk-image"); node.textContent = `[image: ${block.alt_text || ""}]`; return node; }
    default: return unsupported("block", block.type, block);
  }
}

// ctx: {names, onAction(element, blockId, extra, node), state: {get(block, action), set(block, action, value)}, errors, idPrefix}
function renderBlocks(blocks, ctx) {
  const node = el("div", "bk-blocks");
  (blocks || []).forEach((block) => node.appendChild(renderBlock(block, ctx)));
  return node;
}

window.BlockKit = { renderBlocks, mrkdwn, esc, textObject };

// The playground page: who you are, what Slack shows you (from the bot's real payloads), and what you do, sent as Slack would.
"use strict";

const SECRET = document.querySelector('meta[name="playground-secret"]').content;
const UNWRAP = /unwrap ([A-Za-z0-9._-]{20,})/;
const page = {
  me: "U0DEV0001",
  where: {},          // person → the conversation they look at
  data: null,         // the last /api/state
  once: {},           // message ts → the token unwrapped from it: in this page's memory only, never in /api/state
  forms: {},          // view ID → typed input state, kept across re-renders and error answers
  files: {},          // file ID → its text, once opened
  verify: null,
  modalKey: "",
  busy: false,
  together: false,    // everyone side by side, one column each
  all: {},            // person → their last /api/state, in the side-by-side view
};

async function api(path, body) {
  const init = { headers: { "X-Playground-Secret": SECRET } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

function act(action) {
  return api("/api/act", { as: page.me, ...action }).then(refresh, showError);
}

function showError(error) {
  const status = document.getElementById("status-line");
  status.textContent = String(error.message || error);
  status.hidden = false;
}

let refreshing = null;
let again = false;
async function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    do {
      again = false;
      try {
        if (page.together) {
          const ids = page.data.people.map((p) => p.id);
          const states = await Promise.all(ids.map((id) => api(`/api/state?as=${encodeURIComponent(id)}`)));
          ids.forEach((id, i) => { page.all[id] = states[i]; });
          page.data = page.all[page.me];
        } else {
          page.data = await api(`/api/state?as=${encodeURIComponent(page.me)}`);
        }
        render();
      } catch (error) {
        showError(error);
      }
    } while (again);
  })();
  try { await refreshing; } finally { refreshing = null; }
}

function names() { return (page.data && page.data.names) || {}; }

function current() {
  return conversationOf(page.data, page.me);
}

function conversationOf(state, who) {
  const id = page.where[who] || "dm";
  if (id === "home") return "home";
  return state.conversations.find((c) => c.id === id) || state.conversations.find((c) => c.kind === "dm");
}

// ------------------------------------------------------------------ rendering

function render() {
  renderPeople();
  document.querySelector("main.layout").classList.toggle("together", page.together);
  if (page.together) renderTogether();
  else { renderSidebar(); renderPane(); }
  renderModal();
  renderWallet();
  renderAudit();
}

// Keyed rendering: a node whose content did not change stays as it is (focus, typing, a click in progress keep working).
function reconcile(container, items) {
  const old = new Map([...container.children].map((n) => [n.dataset.key, n]));
  items.forEach(({ key, make }, i) => {
    let node = old.get(key);
    if (!node) { node = make(); node.dataset.key = key; }
    if (container.children[i] !== node) container.insertBefore(node, container.children[i] || null);
  });
  while (container.children.length > items.length) container.lastChild.remove();
}

function renderPeople() {
  reconcile(document.getElementById("people"), page.data.people.map((p) => ({
    key: `${p.id}|${p.id === page.me}`,
    make: () => {
      const tab = document.createElement("button");
      tab.type = "button";
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-selected", String(p.id === page.me));
      tab.textContent = `${p.name} — ${p.role}`;
      tab.addEventListener("click", () => switchTo(p.id));
      return tab;
    },
  })));
}

function renderSidebar() {
  const here = current();
  const hereId = here === "home" ? "home" : here.id;
  const entry = (id, label, count) => ({
    key: `${id}|${label}|${count}|${hereId === id}`,
    make: () => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "conv" + (hereId === id ? " here" : "");
      b.textContent = label + (count ? ` (${count})` : "");
      b.setAttribute("aria-current", String(hereId === id));
      b.addEventListener("click", () => open(id));
      return b;
    },
  });
  const items = [entry("home", "jitbot · Home", 0)];
  page.data.conversations.forEach((c) => items.push(entry(c.id, c.name, c.messages.length + c.ephemerals.length)));
  reconcile(document.getElementById("sidebar"), items);
}

function ctxFor(where, key, as) {
  return {
    names: names(),
    idPrefix: key,
    errors: {},
    state: { get: () => null, set: () => {} },
    onAction: (element, blockId, extra, node) => {
      node.disabled = true;  // one click, one request
      if (as) page.me = as;  // a click in someone's column is theirs
      act({ kind: "block_action", where, element, block_id: blockId || "", ...extra }).finally(() => { node.disabled = false; });
    },
  };
}

function paneParts() {
  const pane = document.getElementById("pane");
  if (!pane.firstChild) {
    const head = document.createElement("h2");
    head.className = "pane-title";
    const list = document.createElement("div");
    list.className = "messages";
    pane.append(head, list, composer());
  }
  return [pane.children[0], pane.children[1], pane.children[2]];
}

function renderPane() {
  const [head, list, form] = paneParts();
  const here = current();
  form.hidden = here === "home";
  const who = `${page.data.generation}|${page.me}`;
  if (here === "home") {
    head.textContent = "jitbot · Home";
    const home = page.data.home;
    reconcile(list, [{
      key: `${who}|home|${JSON.stringify(home)}`,
      make: () => {
        const view = document.createElement("article");
        view.className = "home";
        if (home) view.appendChild(BlockKit.renderBlocks(home.blocks, ctxFor({ type: "view", view_id: `VHOME${page.me}` }, "home")));
        else view.textContent = "Opening the Home tab…";
        return view;
      },
    }]);
    return;
  }
  head.textContent = here.name;
  reconcile(list, itemsOf(here, page.me));
  form.dataset.channel = here.id;
  form.querySelector("input").placeholder = `${page.data.command} … in ${here.name}`;
}

// One conversation's messages and ephemerals in time order, as `as` sees them.
function itemsOf(here, as) {
  const who = `${page.data.generation}|${as}`;
  const items = [
    ...here.messages.map((m) => ({
      ts: Number(m.ts),
      key: `${who}|${here.id}|${JSON.stringify([m, page.once[m.ts], (page.onceError || {})[m.ts], (m.files || []).map((f) => page.files[f.id])])}`,
      make: () => message(m, here, as),
    })),
    ...here.ephemerals.map((e) => ({ ts: Number(e.ts), key: `${who}|${here.id}|${JSON.stringify(e)}`, make: () => ephemeral(e, as) })),
  ].sort((a, b) => a.ts - b.ts);
  if (!items.length) {
    items.push({ key: "empty", make: () => Object.assign(document.createElement("p"), { className: "empty", textContent: "Nothing here yet." }) });
  }
  return items;
}

// The side-by-side view: a column per person, each showing the conversation they look at (a select picks another).
function renderTogether() {
  const grid = document.getElementById("together");
  reconcile(grid, page.data.people.map((p) => ({ key: p.id, make: () => column(p) })));
  page.data.people.forEach((p, i) => fillColumn(grid.children[i], p));
}

function column(p) {
  const col = document.createElement("section");
  col.className = "person";
  col.setAttribute("aria-label", `${p.name} — ${p.role}`);
  const head = document.createElement("h2");
  head.className = "person-title";
  head.textContent = `${p.name} — ${p.role}`;
  const pick = document.createElement("select");
  pick.setAttribute("aria-label", `Conversation ${p.name} looks at`);
  pick.addEventListener("change", () => { page.where[p.id] = pick.value; render(); });
  const list = document.createElement("div");
  list.className = "messages";
  col.append(head, pick, list, composer(p.id));
  return col;
}

function fillColumn(col, p) {
  const state = page.all[p.id];
  if (!state) return;
  const [head, pick, list, form] = col.children;
  head.classList.toggle("me", p.id === page.me);
  reconcile(pick, state.conversations.map((c) => ({
    key: `${c.id}|${c.name}`,
    make: () => Object.assign(document.createElement("option"), { value: c.id, textContent: c.name }),
  })));
  const chosen = conversationOf(state, p.id);
  const here = chosen === "home" ? state.conversations.find((c) => c.kind === "dm") : chosen;  // Home: the single view's
  pick.value = here.id;
  const shown = list.children.length;
  reconcile(list, itemsOf(here, p.id));
  if (list.children.length !== shown) list.scrollTop = list.scrollHeight;  // as Slack does: the newest in view
  form.dataset.channel = here.id;
  form.querySelector("input").placeholder = `${state.command} … as ${p.name}`;
}

function byline(extra) {
  const line = document.createElement("div");
  line.className = "byline";
  line.innerHTML = `<b>jitbot</b> <span class="app">APP</span> ${extra}`;
  return line;
}

function message(m, conversation, as) {
  const node = document.createElement("article");
  node.className = "msg";
  node.dataset.ts = m.ts;
  node.appendChild(byline(m.edited ? '<span class="edited">(edited)</span>' : ""));
  const where = { type: "message", channel: conversation.id, ts: m.ts };
  node.appendChild(m.blocks && m.blocks.length
    ? BlockKit.renderBlocks(m.blocks, ctxFor(where, m.ts, as))
    : Object.assign(document.createElement("div"), { className: "bk-section-text", innerHTML: BlockKit.mrkdwn(m.text || "", names()) }));
  (m.files || []).forEach((f) => node.appendChild(file(f, as)));
  if (conversation.kind === "dm" && UNWRAP.test(JSON.stringify(m.blocks) + (m.text || ""))) node.appendChild(unwrapper(m, conversation, as));
  if (m.replies && m.replies.length) {
    const thread = document.createElement("details");
    thread.className = "thread";
    thread.open = true;
    const summary = document.createElement("summary");
    summary.textContent = `${m.replies.length} ${m.replies.length === 1 ? "reply" : "replies"} in thread`;
    thread.appendChild(summary);
    m.replies.forEach((r) => thread.appendChild(message({ ...r, replies: [] }, conversation, as)));
    node.appendChild(thread);
  }
  return node;
}

function ephemeral(e, as) {
  const node = document.createElement("article");
  node.className = "msg ephemeral";
  node.dataset.ts = e.ts;
  node.appendChild(byline('<span class="only">Only visible to you</span>'));
  node.appendChild(e.blocks && e.blocks.length
    ? BlockKit.renderBlocks(e.blocks, ctxFor({ type: "ephemeral", id: e.id }, e.id, as))
    : Object.assign(document.createElement("div"), { className: "bk-section-text", innerHTML: BlockKit.mrkdwn(e.text || "", names()) }));
  return node;
}

function file(f, as) {
  const box = document.createElement("div");
  box.className = "file";
  const label = document.createElement("span");
  label.textContent = `📄 ${f.title || f.name} (${f.size} bytes)`;
  const show = document.createElement("button");
  show.type = "button";
  show.className = "pg-chrome";
  show.textContent = page.files[f.id] !== undefined ? "Hide file" : "Open file";
  show.addEventListener("click", async () => {
    if (page.files[f.id] !== undefined) delete page.files[f.id];
    else page.files[f.id] = (await api(`/api/file?as=${as || page.me}&id=${encodeURIComponent(f.id)}`)).text;
    render();
  });
  box.append(label, show);
  if (page.files[f.id] !== undefined) {
    const pre = document.createElement("pre");
    pre.className = "file-text";
    pre.textContent = page.files[f.id];
    box.appendChild(pre);
  }
  return box;
}

function unwrapper(m, conversation, as) {
  const box = document.createElement("div");
  box.className = "terminal";
  const run = document.createElement("button");
  run.type = "button";
  run.className = "pg-chrome";
  run.textContent = "Run bao unwrap in my terminal";
  run.disabled = page.once[m.ts] !== undefined;
  run.addEventListener("click", async () => {
    run.disabled = true;
    try {
      if (as) page.me = as;  // the wallet beside shows whose terminal ran it
      const answer = await api("/api/unwrap", { as: page.me, channel: conversation.id, ts: m.ts });
      page.once[m.ts] = answer.token;
    } catch (error) {
      page.once[m.ts] = null;
      page.onceError = { ...(page.onceError || {}), [m.ts]: error.message };
    }
    refresh();
  });
  box.appendChild(run);
  if (page.once[m.ts]) {
    const pre = document.createElement("pre");
    pre.className = "once";
    pre.textContent = `token: ${page.once[m.ts]}\n(shown once: copy it now; the page forgets it when you reload)`;
    box.appendChild(pre);
  } else if (page.onceError && page.onceError[m.ts]) {
    const pre = document.createElement("pre");
    pre.className = "once failed";
    pre.textContent = `bao unwrap: ${page.onceError[m.ts]}`;
    box.appendChild(pre);
  }
  return box;
}

function composer(as) {
  const form = document.createElement("form");
  form.className = "composer";
  form.innerHTML = '<input type="text" aria-label="Message" autocomplete="off"><button type="submit">Send</button><p class="hint"></p>';
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = form.querySelector("input");
    const text = input.value.trim();
    const hint = form.querySelector(".hint");
    if (!text.startsWith("/")) { hint.textContent = `jitbot reads slash commands only: type ${page.data.command} help`; return; }
    input.value = "";
    hint.textContent = "";
    if (as) page.me = as;
    act({ kind: "slash", channel: form.dataset.channel, text });  // the answer (ephemeral, modal) arrives with the refresh
  });
  return form;
}

function renderModal() {
  const layer = document.getElementById("modal-layer");
  const modal = page.data.modal;
  const key = modal ? `${page.me}|${modal.id}|${modal.view.hash || ""}|${JSON.stringify(modal.errors)}|${modal.replaced}` : "";
  if (key === page.modalKey) return;  // unchanged: keep what is being typed, and the focus
  page.modalKey = key;
  if (!modal) { layer.hidden = true; layer.replaceChildren(); return; }
  const view = modal.view;
  const form = page.forms[modal.id] || (page.forms[modal.id] = {});
  const dialog = document.createElement("div");
  dialog.className = "modal";
  dialog.setAttribute("role", "dialog");
  dialog.setAttribute("aria-modal", "true");
  dialog.setAttribute("aria-labelledby", "modal-title");
  const title = document.createElement("h2");
  title.id = "modal-title";
  title.textContent = view.title ? view.title.text : "";
  const ctx = {
    names: names(),
    idPrefix: modal.id,
    errors: modal.errors,
    state: {
      get: (block, action) => (form[block] || {})[action] || null,
      set: (block, action, value) => { (form[block] = form[block] || {})[action] = value; },
    },
    onAction: (element, blockId, extra, node) => {
      node.disabled = true;
      act({ kind: "block_action", where: { type: "view", view_id: modal.id }, element, block_id: blockId || "", ...extra });
    },
  };
  const body = BlockKit.renderBlocks(view.blocks, ctx);
  const buttons = document.createElement("div");
  buttons.className = "modal-buttons";
  const close = document.createElement("button");
  close.type = "button";
  close.textContent = view.close ? view.close.text : "Close";
  close.addEventListener("click", () => act({ kind: "close", view_id: modal.id }));
  buttons.appendChild(close);
  if (view.submit && !modal.replaced) {
    const submit = document.createElement("button");
    submit.type = "button";
    submit.className = "bk-button primary";
    submit.textContent = view.submit.text;
    submit.addEventListener("click", () => {
      submit.disabled = true;
      page.modalKey = "redraw";  // redraw with the answer, even when it repeats the same error
      act({ kind: "submit", view_id: modal.id, values: form });
    });
    buttons.appendChild(submit);
  }
  dialog.append(title, body, buttons);
  dialog.addEventListener("keydown", (event) => { if (event.key === "Escape") close.click(); });
  layer.replaceChildren(dialog);
  layer.hidden = false;
  const first = dialog.querySelector("input, select, textarea, button");
  if (first) first.focus();
}

function renderWallet() {
  const body = document.querySelector("#wallet .body");
  const mine = page.data.credentials;
  if (!mine.length) {
    reconcile(body, [{ key: "none", make: () => Object.assign(document.createElement("p"), { textContent: "None yet: unwrap a credential from your DM." }) }]);
    return;
  }
  reconcile(body, mine.map((c) => ({ key: `${page.data.generation}|${JSON.stringify(c)}`, make: () => {
    const card = document.createElement("div");
    card.className = "cred";
    card.dataset.request = c.request_id;
    const head = document.createElement("div");
    head.className = "cred-head";
    head.textContent = `${c.request_id} · ${c.policies.join(", ")} · accessor ${c.accessor} · ttl ${c.ttl}s`;
    const tries = document.createElement("div");
    tries.className = "tries";
    c.tries.forEach((what) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "pg-chrome";
      b.textContent = `bao ${what}`;
      b.addEventListener("click", () => { b.disabled = true; api("/api/try", { as: page.me, credential: c.id, what }).then(refresh, showError); });
      tries.appendChild(b);
    });
    const log = document.createElement("pre");
    log.className = "log";
    log.textContent = c.log.map((l) => `$ ${l.command}\n${l.ok ? "ok: " : ""}${l.out}`).join("\n");
    card.append(head, tries, log);
    return card;
  } })));
}

function renderAudit() {
  const verify = document.querySelector("#audit .verify");
  reconcile(verify, [
    {
      key: "run",
      make: () => {
        const run = document.createElement("button");
        run.type = "button";
        run.className = "pg-chrome";
        run.textContent = "jitbot audit verify";
        run.addEventListener("click", async () => {
          run.disabled = true;
          try { page.verify = await api("/api/verify", {}); } catch (error) { page.verify = { intact: false, lines: [error.message] }; }
          run.disabled = false;
          renderAudit();
        });
        return run;
      },
    },
    {
      key: `verdict|${JSON.stringify(page.verify)}`,
      make: () => {
        const out = document.createElement("pre");
        out.className = "verdict" + (page.verify ? (page.verify.intact ? " intact" : " broken") : "");
        out.textContent = page.verify ? page.verify.lines.join("\n") : "";
        return out;
      },
    },
  ]);
  const body = document.querySelector("#audit .body");
  if (!body.firstChild) {
    const table = document.createElement("table");
    table.innerHTML = "<thead><tr><th>#</th><th>at</th><th>event</th><th>request</th><th>actor</th><th>hash</th></tr></thead><tbody></tbody>";
    body.appendChild(table);
  }
  reconcile(body.querySelector("tbody"), page.data.audit.slice().reverse().map((e) => ({
    key: `${page.data.generation}|${e.seq}|${e.hash}`,
    make: () => {
      const tr = document.createElement("tr");
      [e.seq, e.at, e.event + (e.rule ? ` (${e.rule})` : ""), e.request_id || "", e.actor, e.hash].forEach((v) => {
        const td = document.createElement("td");
        td.textContent = String(v);
        tr.appendChild(td);
      });
      return tr;
    },
  })));
  document.getElementById("audit-title").textContent = `Audit trail (${page.data.audit.length})`;
}

// ------------------------------------------------------------------ navigation

function open(id) {
  page.where[page.me] = id;
  if (id === "home") act({ kind: "open_home" });  // Slack sends app_home_opened each time the tab is opened
  render();
}

function switchTo(user) {
  page.me = user;
  page.modalKey = "redraw";
  refresh().then(() => { if (current() === "home") act({ kind: "open_home" }); });
}

document.getElementById("together-toggle").addEventListener("click", (event) => {
  page.together = !page.together;
  event.target.setAttribute("aria-pressed", String(page.together));
  event.target.textContent = page.together ? "One at a time" : "Side by side";
  refresh();
});

document.getElementById("reset").addEventListener("click", async (event) => {
  event.target.disabled = true;
  try {
    await api("/api/reset", {});
    document.getElementById("status-line").hidden = true;  // what failed while it restarted is moot now
    Object.assign(page, { once: {}, forms: {}, files: {}, verify: null, modalKey: "redraw", onceError: {} });
  } catch (error) {
    showError(error);
  }
  event.target.disabled = false;
  refresh();
});

const status = document.createElement("p");
status.id = "status-line";
status.setAttribute("role", "status");
status.hidden = true;
status.addEventListener("click", () => { status.hidden = true; });
document.body.appendChild(status);

new EventSource(`/api/events?s=${encodeURIComponent(SECRET)}`).addEventListener("changed", () => refresh());
refresh();

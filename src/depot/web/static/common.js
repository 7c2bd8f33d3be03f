// Shared by the board and the driver's view: the tab's token, JSON calls with the bearer header,
// the event stream read through fetch() (EventSource cannot send headers), and a DOM helper that
// only ever writes text (never HTML), so markup in an id or a note shows as text.
"use strict";

const Depot = (() => {
  const TOKEN_KEY = "depot.token";
  const $ = (id) => document.getElementById(id);
  const day = document.body.dataset.day;

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status; this.code = code; this.details = details;
    }
  }

  function newKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  function headers(extra) {
    const h = { Accept: "application/json", ...extra };
    const t = token();
    if (t) h.Authorization = `Bearer ${t}`;
    return h;
  }

  // One JSON call. Writes (POST) carry an Idempotency-Key so a retried click changes nothing twice.
  async function api(method, path, body) {
    const extra = {};
    if (body !== undefined) extra["Content-Type"] = "application/json";
    if (method !== "GET") extra["Idempotency-Key"] = newKey();
    const res = await fetch(path, {
      method, headers: headers(extra), cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!res.ok) {
      const err = (data && data.error) || {};
      if (res.status === 401 && token()) signOut("Your token was refused: " + (err.message || res.status));
      throw new ApiError(res.status, err.code || "http_" + res.status,
        err.message || `${method} ${path} answered ${res.status}`, err.details);
    }
    return data;
  }

  const q = (params) => {
    const s = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, v);
    const text = s.toString();
    return text ? "?" + text : "";
  };

  // el("td", {class: "x", title: "..."}, "text", otherNode): attributes and text only.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "hidden" || k === "disabled") node[k] = Boolean(v);
      else node.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function show(id, text) { const n = $(id); if (n) n.textContent = text || ""; }
  const notice = (text) => show("notice", text);
  function error(err) {
    show("error", err ? (err.message || String(err)) : "");
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    location.hash = "";
    $("main").hidden = true;
    $("sign-out").hidden = true;
    $("signin").hidden = false;
    show("signin-error", message || "");
    $("token-input").focus();
  }

  // Who is calling: /whoami with the tab's token. 401: ask for a token. 404: an API without
  // /whoami, which let the call through without a token, so it is in open mode.
  async function whoami() {
    try {
      return await api("GET", "/whoami");
    } catch (err) {
      if (err.status === 404) return { subject: "open", role: "dispatcher", open: true };
      throw err;
    }
  }

  // Start a page: resolve the principal (asking for a token if needed), then call ready(principal).
  function start(ready) {
    $("signin-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      $("token-input").value = "";
      boot();
    });
    $("sign-out").addEventListener("click", () => signOut("Signed out."));
    async function boot() {
      let who;
      try {
        who = await whoami();
      } catch (err) {
        if (err.status === 401) { signOut(token() ? err.message : ""); return; }
        error(err);
        return;
      }
      $("signin").hidden = true;
      show("signin-error", "");
      $("sign-out").hidden = !token();
      show("who", who.open ? "open mode (no authentication)"
        : `${who.role}${who.driver_id ? " " + who.driver_id : ""}`);
      try {
        await ready(who);
      } catch (err) {
        error(err);
      }
    }
    boot();
  }

  // Server-sent events over fetch(), so the bearer header goes with them. Reconnects with the
  // last id seen (Last-Event-ID) after a drop; onEvent gets each parsed event.
  function follow(dayValue, onEvent) {
    let lastId = null;
    let stopped = false;
    let delay = 500;
    const live = (text, ok) => {
      const n = $("live");
      n.textContent = text;
      n.classList.toggle("ok", Boolean(ok));
    };
    async function once() {
      const extra = { Accept: "text/event-stream" };
      if (lastId !== null) extra["Last-Event-ID"] = lastId;
      const res = await fetch("/events" + q({ day: dayValue }), { headers: headers(extra), cache: "no-store" });
      if (!res.ok || !res.body) throw new ApiError(res.status, "events", `live updates unavailable (${res.status})`);
      live("live", true);
      delay = 500;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
          const ev = { id: null, event: "message", data: [] };
          for (const line of block.split(/\r?\n/)) {
            if (!line || line.startsWith(":")) continue;
            const i = line.indexOf(":");
            const field = i < 0 ? line : line.slice(0, i);
            const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
            if (field === "id") ev.id = val;
            else if (field === "event") ev.event = val;
            else if (field === "data") ev.data.push(val);
          }
          if (ev.id !== null) lastId = ev.id;
          if (!ev.data.length) continue;
          let data = null;
          try { data = JSON.parse(ev.data.join("\n")); } catch { data = { raw: ev.data.join("\n") }; }
          onEvent(ev.event, data);
        }
      }
    }
    (async () => {
      while (!stopped) {
        try {
          await once();
          live("reconnecting…", false);
        } catch (err) {
          if (err.status === 401 || err.status === 403 || err.status === 404) {
            live("no live updates: " + err.message, false);
            return;
          }
          live("reconnecting…", false);
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10000);
      }
    })();
    return () => { stopped = true; };
  }

  // Coalesces refreshes: at most one run at a time, and one more after it if asked meanwhile.
  function refresher(fn) {
    let running = null;
    let again = false;
    const run = async () => {
      if (running) { again = true; return running; }
      running = (async () => {
        do {
          again = false;
          try { await fn(); } catch (err) { error(err); }
        } while (again);
      })();
      try { await running; } finally { running = null; }
    };
    return run;
  }

  // Puts one node per item into container, in order, reusing the node of an item whose data did
  // not change (so a form being filled in, or the focused button, survives a refresh).
  function reconcile(container, items, keyOf, render) {
    const old = new Map([...container.children].map((n) => [n.dataset.key, n]));
    const nodes = items.map((item) => {
      const key = String(keyOf(item));
      const sig = JSON.stringify(item);
      const prev = old.get(key);
      if (prev && prev.dataset.sig === sig) { old.delete(key); return prev; }
      const node = render(item);
      node.dataset.key = key;
      node.dataset.sig = sig;
      return node;
    });
    for (const node of old.values()) node.remove(); // gone, or changed and rendered anew
    let at = container.firstElementChild;
    for (const node of nodes) {
      if (node === at) at = at.nextElementSibling;
      else container.insertBefore(node, at);
    }
  }

  return { $, api, q, el, day, token, notice, error, start, follow, refresher, reconcile, ApiError, show };
})();

// The dispatcher's board: reads the JSON API page by page, acts through SPEC section 4's calls,
// and refreshes the affected parts when GET /events says something changed elsewhere.
"use strict";

(() => {
  const { $, api, q, el, day, notice, error, refresher } = Depot;
  const enc = encodeURIComponent;
  const PAGE = 25;
  const state = { drivers: { offset: 0, q: "" }, pool: { offset: 0, reason: "" }, cap: null,
    packageId: null, preview: null, chart: null };
  const REASONS = { no_eligible_driver: "No driver's rules accept it",
    eligible_drivers_full: "Every driver that accepts it is full",
    no_driver_named: "No driver named in a run" };
  const STATUS_COLOURS = { unassigned: "#9e9e9e", assigned: "#1f77b4", accepted: "#17becf",
    in_progress: "#ff7f0e", delivered: "#2ca02c", failed_to_deliver: "#d62728", cancelled: "#5d4037" };

  const label = (s) => String(s).replaceAll("_", " ");
  const rangeText = (page, noun) => page.total === 0 ? `no ${noun}`
    : `${page.offset + 1}–${Math.min(page.offset + page.items.length, page.total)} of ${page.total} ${noun}`;

  function rulesText(rules) {
    if (!rules || !rules.length) return "no rules";
    return rules.map((r) => {
      const params = Object.entries(r.params || {}).map(([k, v]) =>
        `${k}=${Array.isArray(v) ? v.join("/") : v}`).join(", ");
      return params ? `${r.code} (${params})` : r.code;
    }).join("; ");
  }

  // --- reads ---------------------------------------------------------------------------------

  async function loadTiles() {
    let s;
    try {
      s = await api("GET", `/days/${day}/summary`);
    } catch (err) {
      if (err.status === 404) {
        document.querySelectorAll("[data-count]").forEach((n) => { n.textContent = "0"; });
        notice(`No manifest for ${day} yet: ${err.message}`);
        return;
      }
      throw err;
    }
    for (const [key, value] of Object.entries(s.counts || {})) {
      const node = document.querySelector(`[data-count="${key}"]`);
      if (node) node.textContent = String(value);
    }
    state.cap = s.cap;
    $("day-cap").textContent = s.cap === null || s.cap === undefined ? "none yet" : String(s.cap);
    $("day-version").textContent = String(s.version);
    if (s.cap !== null && s.cap !== undefined && !$("run-cap").dataset.touched) $("run-cap").value = s.cap;
  }

  function statusesText(st) {
    const parts = Object.entries(st || {}).filter(([, n]) => n).map(([k, n]) => `${label(k)} ${n}`);
    return parts.length ? parts.join(" · ") : "none";
  }

  async function loadDrivers() {
    const d = state.drivers;
    const page = await api("GET", `/days/${day}/drivers` + q({ offset: d.offset, limit: PAGE, q: d.q }));
    const body = $("drivers-body");
    Depot.reconcile(body, page.items, (drv) => drv.driver_id, (drv) => {
      const cap = drv.cap === null || drv.cap === undefined ? null : drv.cap;
      const off = drv.availability === "off_duty";
      const toggle = el("button", { type: "button", class: "small",
        "aria-label": `${off ? "Set on duty" : "Set off duty"}: ${drv.driver_id}`,
        onclick: () => setAvailability(drv.driver_id, off ? "on_duty" : "off_duty") },
      off ? "Set on duty" : "Set off duty");
      return el("tr", { "data-driver": drv.driver_id, class: off ? "off" : "" },
        el("th", { scope: "row" }, drv.driver_id, drv.named ? "" : el("span", { class: "muted" }, " (not in a run)")),
        el("td", { class: "rules" }, rulesText(drv.rules)),
        el("td", { class: "load" },
          cap ? el("meter", { min: 0, max: cap, value: Math.min(drv.load, cap),
            "aria-label": `load of ${drv.driver_id}` }) : "",
          ` ${drv.load}${cap !== null ? " / " + cap : ""}`),
        el("td", { class: "statuses" }, statusesText(drv.statuses)),
        el("td", { class: "availability" }, el("span", { class: "avail" }, label(drv.availability)), " ", toggle));
    });
    $("drivers-range").textContent = rangeText(page, "drivers");
    $("drivers-prev").disabled = d.offset <= 0;
    $("drivers-next").disabled = d.offset + page.items.length >= page.total;
  }

  async function loadPool() {
    const p = state.pool;
    const page = await api("GET", `/days/${day}/unassigned` + q({ offset: p.offset, limit: PAGE, reason: p.reason }));
    const reasons = $("pool-reasons");
    const total = Object.values(page.reasons || {}).reduce((a, b) => a + b, 0);
    const chip = (value, text, n) => el("button", { type: "button", class: "chip",
      "aria-pressed": String(p.reason === value), "data-reason": value || "all",
      onclick: () => { p.reason = value; p.offset = 0; refreshPool(); } }, `${text} (${n})`);
    reasons.replaceChildren(chip("", "All reasons", total),
      ...Object.entries(page.reasons || {}).map(([r, n]) => chip(r, REASONS[r] || label(r), n)));
    Depot.reconcile($("pool-body"), page.items, (pkg) => pkg.package_id, (pkg) => el("tr", { "data-package": pkg.package_id },
      el("th", { scope: "row" }, el("button", { type: "button", class: "link",
        "aria-label": `Timeline of ${pkg.package_id}`, onclick: () => openPackage(pkg.package_id) },
      pkg.package_id)),
      el("td", { class: "why" }, el("span", { class: "tag", title: REASONS[pkg.reason] || "" },
        label(pkg.reason || "")), pkg.message || "",
        pkg.rejected_by && pkg.rejected_by.length ? el("span", { class: "muted" },
          ` (rejected by ${pkg.rejected_by.slice(0, 5).map((r) => typeof r === "string" ? r
            : (r.driver_id || "") + (r.codes ? " " + r.codes.join("/") : r.code ? " " + r.code : "")).join(", ")}` +
          `${pkg.rejected_by.length > 5 ? ", …" : ""})`) : ""),
      el("td", {}, pkg.region || ""), el("td", {}, pkg.weight_kg ?? ""), el("td", {}, pkg.delivery_hour ?? ""),
      el("td", { class: "actions" },
        el("button", { type: "button", class: "small", "aria-label": `Reassign ${pkg.package_id}`,
          onclick: () => openReassign(pkg.package_id) }, "Reassign"),
        el("button", { type: "button", class: "small", "aria-label": `Cancel ${pkg.package_id}`,
          onclick: () => openCancel(pkg.package_id) }, "Cancel"))));
    $("pool-range").textContent = rangeText(page, "packages");
    $("pool-prev").disabled = p.offset <= 0;
    $("pool-next").disabled = p.offset + page.items.length >= page.total;
  }

  function colour(key, color) {
    if (color === "status") return STATUS_COLOURS[key] || "#607d8b";
    if (key === "unassigned") return STATUS_COLOURS.unassigned;
    let h = 0;
    for (const ch of String(key)) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
    return `hsl(${h % 360} 65% 45%)`;
  }

  async function loadMap() {
    const color = $("map-color").value;
    const m = await api("GET", `/days/${day}/map` + q({ color }));
    const groups = new Map();
    for (const pt of m.points || []) {
      if (!groups.has(pt.key)) groups.set(pt.key, []);
      groups.get(pt.key).push({ x: pt.lon, y: pt.lat, count: pt.count });
    }
    const sums = [...groups].map(([key, pts]) => [key, pts.reduce((a, p) => a + p.count, 0)])
      .sort((a, b) => b[1] - a[1]);
    const datasets = sums.map(([key]) => ({ label: String(key), data: groups.get(key),
      backgroundColor: colour(key, color), borderWidth: 0,
      pointRadius: (ctx) => Math.min(2 + Math.sqrt((ctx.raw && ctx.raw.count) || 1), 12) }));
    const top = sums.slice(0, 8).map(([k, n]) => `${label(k)} ${n}`).join(", ");
    $("map-caption").textContent = `${m.total} packages in ${(m.points || []).length} map cells, coloured by ` +
      `${color}. Most: ${top || "none"}${sums.length > 8 ? ", …" : ""}.`;
    $("map-canvas").setAttribute("aria-label", "Destinations of the day's packages. " + $("map-caption").textContent);
    if (typeof Chart === "undefined") return;
    if (state.chart) {
      state.chart.data.datasets = datasets;
      state.chart.options.plugins.legend.display = datasets.length <= 12;
      state.chart.update("none");
      return;
    }
    state.chart = new Chart($("map-canvas"), {
      type: "scatter", data: { datasets },
      options: { animation: false, responsive: true, maintainAspectRatio: true, aspectRatio: 1.4,
        parsing: true, normalized: true,
        scales: { x: { title: { display: true, text: "longitude" } },
          y: { title: { display: true, text: "latitude" } } },
        plugins: { legend: { display: datasets.length <= 12, position: "bottom" },
          tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${ctx.raw.count} at ` +
            `${ctx.raw.y.toFixed(3)}, ${ctx.raw.x.toFixed(3)}` } } } },
    });
  }

  function fact(name, value) {
    return [el("dt", {}, name), el("dd", { "data-fact": name }, value === null || value === undefined ? "—" : String(value))];
  }

  async function loadPackage() {
    const id = state.packageId;
    if (!id) return;
    const view = $("package-view");
    let r;
    try {
      r = await api("GET", `/packages/${enc(id)}` + q({ day }));
    } catch (err) {
      view.hidden = true;
      throw err;
    }
    const pkg = r.package || {};
    const dest = pkg.destination || null;
    const status = r.status || (r.driver_id ? "assigned" : "unassigned");
    $("package-facts").replaceChildren(
      ...fact("package", pkg.package_id || id), ...fact("status", label(status)),
      ...fact("driver", r.driver_id || "none"), ...fact("region", pkg.region),
      ...fact("weight kg", pkg.weight_kg), ...fact("delivery hour", pkg.delivery_hour),
      ...fact("distance km", pkg.distance_km),
      ...(dest ? fact("destination", [dest.street, dest.postcode, dest.city].filter(Boolean).join(", ")) : []),
      ...(r.assignment && (r.assignment.failure_reason || r.assignment.reason)
        ? fact("reason", label(r.assignment.failure_reason || r.assignment.reason)) : []),
      ...(r.assignment && r.assignment.note ? fact("note", r.assignment.note) : []));
    const actions = [];
    const movable = ["assigned", "accepted", "unassigned"].includes(status);
    if (r.driver_id && ["assigned", "accepted"].includes(status)) {
      actions.push(el("button", { type: "button", onclick: () => unassign(id) }, "Unassign"));
    }
    if (movable) {
      actions.push(el("button", { type: "button", onclick: () => openReassign(id) }, "Reassign"));
      actions.push(el("button", { type: "button", onclick: () => openCancel(id) }, "Cancel"));
    }
    $("package-actions").replaceChildren(...actions);
    $("package-history").replaceChildren(...(r.history || []).map((h) => {
      const extra = Object.entries(h).filter(([k]) => !["at", "actor", "event", "type", "day", "seq"].includes(k))
        .map(([k, v]) => `${label(k)}: ${typeof v === "object" && v !== null ? JSON.stringify(v) : v}`).join(", ");
      const at = typeof h.at === "number" ? new Date(h.at * 1000) : h.at ? new Date(h.at) : null;
      const when = at && !Number.isNaN(at.getTime()) ? at.toISOString().replace("T", " ").slice(0, 19) : "";
      return el("li", {}, el("time", at ? { datetime: at.toISOString() } : {}, when), " ", el("strong", {}, label(h.event || h.type || "")),
        h.day ? ` (${h.day})` : "", h.actor ? ` by ${h.actor}` : "", extra ? ` — ${extra}` : "");
    }));
    view.hidden = false;
  }

  const refreshTiles = refresher(loadTiles);
  const refreshDrivers = refresher(loadDrivers);
  const refreshPool = refresher(loadPool);
  const refreshMap = refresher(loadMap);
  const refreshPackage = refresher(loadPackage);
  const refreshAll = () => Promise.all([refreshTiles(), refreshDrivers(), refreshPool(), refreshMap(),
    refreshPackage()]);

  // --- actions -------------------------------------------------------------------------------

  async function act(promise, done) {
    error(null);
    try {
      const r = await promise;
      if (done) notice(done(r));
      await refreshAll();
      return r;
    } catch (err) {
      error(err);
      return null;
    }
  }

  function setAvailability(driverId, status) {
    return act(api("POST", `/drivers/${enc(driverId)}/availability`, { day, status, reassign: true }), (r) => {
      if (status === "on_duty") return `${driverId} is on duty again.`;
      const released = (r.released || []).length;
      const moved = Object.entries(r.assignments || {}).filter(([d]) => d !== driverId)
        .reduce((n, [, ids]) => n + ids.filter((x) => (r.released || []).includes(x)).length, 0);
      const kept = (r.kept_in_progress || []).length;
      return `${driverId} is off duty: ${released} released, ${moved} given to other drivers, ` +
        `${kept} in progress kept.`;
    });
  }

  function unassign(id) {
    return act(api("POST", "/unassign", { day, package_ids: [id], reason: "unassigned on the board" }),
      () => `${id} is back in the pool.`);
  }

  async function openPackage(id) {
    $("package-q").value = id;
    state.packageId = id;
    error(null);
    await refreshPackage();
    $("package-view").scrollIntoView({ block: "nearest" });
  }

  async function openReassign(id) {
    const dialog = $("reassign-dialog");
    dialog.dataset.package = id;
    $("reassign-package").textContent = id;
    $("reassign-error").textContent = "";
    const select = $("reassign-driver");
    select.replaceChildren(el("option", { value: "" }, "loading…"));
    $("reassign-ok").disabled = true;
    dialog.showModal();
    try {
      const r = await api("GET", `/packages/${enc(id)}/eligible-drivers` + q({ day }));
      const drivers = r.drivers || [];
      select.replaceChildren(...(drivers.length ? drivers.map((d) => el("option", { value: d.driver_id },
        `${d.driver_id} (${d.load}${d.cap !== null && d.cap !== undefined ? " / " + d.cap : ""})`))
        : [el("option", { value: "" }, "no driver accepts it now")]));
      $("reassign-ok").disabled = !drivers.length;
    } catch (err) {
      select.replaceChildren(el("option", { value: "" }, "unavailable"));
      $("reassign-error").textContent = err.message;
    }
  }

  function openCancel(id) {
    const dialog = $("cancel-dialog");
    dialog.dataset.package = id;
    $("cancel-package").textContent = id;
    $("cancel-error").textContent = "";
    $("cancel-reason").value = "";
    dialog.showModal();
  }

  function dialogSubmit(formId, dialogId, errId, call, done) {
    $(formId).addEventListener("submit", async (ev) => {
      const dialog = $(dialogId);
      if (!ev.submitter || ev.submitter.value !== "ok") return; // Close: let the dialog close
      ev.preventDefault();
      const id = dialog.dataset.package;
      try {
        const r = await call(id);
        dialog.close();
        notice(done(id, r));
        await refreshAll();
      } catch (err) {
        $(errId).textContent = err.message;
      }
    });
  }

  async function allOnDutyDrivers() {
    const ids = [];
    for (let offset = 0; ; offset += 200) {
      const page = await api("GET", `/days/${day}/drivers` + q({ offset, limit: 200 }));
      ids.push(...page.items.filter((d) => d.availability !== "off_duty").map((d) => d.driver_id));
      if (!page.items.length || offset + page.items.length >= page.total) return ids;
    }
  }

  function planSummary(r, before) {
    const held = Object.values(r.assignments).reduce((n, ids) => n + ids.length, 0);
    return `${held} packages held by ${Object.keys(r.assignments).length - r.unassigned_drivers.length} of ` +
      `${Object.keys(r.assignments).length} drivers (${held - before >= 0 ? "+" : ""}${held - before} against now); ` +
      `${r.unassigned_packages.length} stay unassigned. The matcher's plan is optimal: no plan within ` +
      "the rules and the cap holds more packages.";
  }

  async function preview(ev) {
    ev.preventDefault();
    error(null);
    const cap = Number($("run-cap").value);
    const typed = $("run-drivers").value.split(/[\s,]+/).filter(Boolean);
    try {
      const driverIds = typed.length ? typed : await allOnDutyDrivers();
      const body = { day, driver_ids: driverIds, max_per_driver: cap };
      const r = await api("POST", "/assign?dry_run=true&explain=true", body);
      const before = Number(document.querySelector('[data-count="assigned"]').textContent) || 0;
      state.preview = { body, before };
      $("preview-summary").textContent = planSummary(r, before);
      const reasons = {};
      for (const e of Object.values(r.explanations || {})) reasons[e.reason] = (reasons[e.reason] || 0) + 1;
      $("preview-reasons").replaceChildren(...Object.entries(reasons).map(([k, n]) =>
        el("li", {}, `${REASONS[k] || label(k)}: ${n}`)));
      $("preview").hidden = false;
      $("commit").focus();
    } catch (err) {
      error(err);
    }
  }

  async function commit() {
    if (!state.preview) return;
    const { body, before } = state.preview;
    const r = await act(api("POST", "/assign", body), (res) => "Committed: " + planSummary(res, before));
    if (r) { $("preview").hidden = true; state.preview = null; }
  }

  // --- wiring --------------------------------------------------------------------------------

  function wire() {
    $("run-form").addEventListener("submit", preview);
    $("run-cap").addEventListener("input", () => { $("run-cap").dataset.touched = "1"; });
    $("commit").addEventListener("click", commit);
    $("discard").addEventListener("click", () => { $("preview").hidden = true; state.preview = null; });
    $("drivers-search").addEventListener("submit", (ev) => {
      ev.preventDefault();
      state.drivers.q = $("drivers-q").value.trim();
      state.drivers.offset = 0;
      refreshDrivers();
    });
    $("drivers-prev").addEventListener("click", () => {
      state.drivers.offset = Math.max(0, state.drivers.offset - PAGE); refreshDrivers();
    });
    $("drivers-next").addEventListener("click", () => { state.drivers.offset += PAGE; refreshDrivers(); });
    $("pool-prev").addEventListener("click", () => {
      state.pool.offset = Math.max(0, state.pool.offset - PAGE); refreshPool();
    });
    $("pool-next").addEventListener("click", () => { state.pool.offset += PAGE; refreshPool(); });
    $("map-color").addEventListener("change", () => refreshMap());
    $("package-search").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const id = $("package-q").value.trim();
      if (id) openPackage(id);
    });
    dialogSubmit("reassign-form", "reassign-dialog", "reassign-error",
      (id) => api("POST", "/reassign", { day, package_id: id, driver_id: $("reassign-driver").value }),
      (id) => `${id} reassigned to ${$("reassign-driver").value}.`);
    dialogSubmit("cancel-form", "cancel-dialog", "cancel-error",
      (id) => api("POST", "/cancel", { day, package_ids: [id], reason: $("cancel-reason").value.trim() }),
      (id) => `${id} cancelled.`);
  }

  Depot.start(async (who) => {
    if (who.role !== "dispatcher") {
      $("main").hidden = true;
      error({ message: "A driver's token opens only the driver's view." });
      Depot.$("notice").replaceChildren(el("a", { href: `/driver?day=${enc(day)}` }, "Open my deliveries"));
      return;
    }
    $("main").hidden = false;
    if (!document.body.dataset.wired) { wire(); document.body.dataset.wired = "1"; }
    Depot.follow(day, () => refreshAll());
    await refreshAll();
    document.body.dataset.ready = "1";
  });
})();

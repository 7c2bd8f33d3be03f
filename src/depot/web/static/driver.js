// The driver's view: the day's packages in delivery order (hour, then distance), each with the
// moves SPEC section 2 allows from its status; failure with a reason and a note, delivery with a
// proof. Refreshes itself when GET /events reports a change.
"use strict";

(() => {
  const { $, api, q, el, day, notice, error, refresher } = Depot;
  const enc = encodeURIComponent;
  const NEXT = { assigned: ["accepted", "in_progress", "failed_to_deliver"],
    accepted: ["in_progress", "failed_to_deliver"], in_progress: ["delivered", "failed_to_deliver"],
    delivered: [], failed_to_deliver: [] };
  const VERB = { accepted: "Accept", in_progress: "Start", delivered: "Delivered…", failed_to_deliver: "Failed…" };
  const label = (s) => String(s).replaceAll("_", " ");
  let driverId = document.body.dataset.driverId || "";

  function card(a) {
    const node = $("delivery-template").content.firstElementChild.cloneNode(true);
    node.dataset.package = a.package_id;
    node.dataset.status = a.status;
    const dest = a.destination || {};
    node.querySelector(".hour").textContent = `${String(a.delivery_hour).padStart(2, "0")}:00 · ${a.distance_km} km`;
    const status = node.querySelector(".status");
    status.textContent = label(a.status);
    status.classList.add("st-" + a.status);
    node.querySelector(".pid").textContent = a.package_id;
    node.querySelector(".where").textContent = [dest.street, dest.postcode, dest.city].filter(Boolean).join(", ")
      || `${a.region} · ${a.weight_kg} kg`;
    if (a.status === "failed_to_deliver") {
      const f = node.querySelector(".failure");
      f.hidden = false;
      f.textContent = `Failed: ${label(a.failure_reason || a.reason || "unspecified")}${a.note ? " — " + a.note : ""}`;
    }
    if (a.status === "delivered" && a.proof) {
      const p = node.querySelector(".proof-shown");
      p.hidden = false;
      p.textContent = `Delivered${a.proof.recipient_name ? " to " + a.proof.recipient_name : ""}` +
        `${a.proof.note ? " — " + a.proof.note : ""}`;
    }
    const fail = node.querySelector(".fail-form");
    const proof = node.querySelector(".proof-form");
    const uid = a.package_id.replace(/[^A-Za-z0-9_-]/g, "_");
    for (const f of [fail, proof]) {
      f.querySelectorAll("select, textarea, input").forEach((c) => { c.id = `${f.className}-${c.name}-${uid}`; });
    }
    const moves = node.querySelector(".moves");
    for (const next of NEXT[a.status] || []) {
      moves.append(el("button", { type: "button", "data-next": next,
        "aria-label": `${VERB[next].replace("…", "")}: ${a.package_id}`,
        onclick: () => {
          if (next === "failed_to_deliver") { fail.hidden = !fail.hidden; proof.hidden = true; return; }
          if (next === "delivered") { proof.hidden = !proof.hidden; fail.hidden = true; return; }
          move(node, a, { status: next });
        } }, VERB[next]));
    }
    fail.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const note = fail.elements.note.value.trim();
      move(node, a, { status: "failed_to_deliver", reason: fail.elements.reason.value, ...(note ? { note } : {}) });
    });
    proof.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const p = {};
      const name = proof.elements.recipient_name.value.trim();
      const note = proof.elements.note.value.trim();
      if (name) p.recipient_name = name;
      if (note) p.note = note;
      move(node, a, { status: "delivered", ...(Object.keys(p).length ? { proof: p } : {}) });
    });
    return node;
  }

  async function move(node, a, change) {
    node.querySelector(".card-error").textContent = "";
    try {
      await api("POST", "/update", { driver_id: driverId, package_id: a.package_id, ...change });
      notice(`${a.package_id}: ${label(change.status)}.`);
      await refresh();
    } catch (err) {
      node.querySelector(".card-error").textContent = err.message;
    }
  }

  async function load() {
    const r = await api("GET", `/drivers/${enc(driverId)}/assignments` + q({ day }));
    const items = (r.assignments || []).slice().sort((x, y) =>
      (x.delivery_hour - y.delivery_hour) || (x.distance_km - y.distance_km)
      || String(x.package_id).localeCompare(String(y.package_id)));
    const done = items.filter((a) => a.status === "delivered" || a.status === "failed_to_deliver").length;
    $("driver-summary").textContent = `${driverId} · ${day}: ${items.length} packages, ${done} done.`;
    Depot.reconcile($("deliveries"), items, (a) => a.package_id, card);
  }
  const refresh = refresher(load);

  Depot.start(async (who) => {
    if (who.role === "driver") {
      driverId = who.driver_id;
    } else {
      $("driver-pick").hidden = false;
      if (!driverId) {
        $("main").hidden = false;
        notice("Pick a driver (open mode / dispatcher): enter a driver id above.");
        $("driver-input").focus();
        return;
      }
    }
    $("main").hidden = false;
    error(null);
    await refresh();
    Depot.follow(day, () => refresh());
    document.body.dataset.ready = "1";
  });
})();

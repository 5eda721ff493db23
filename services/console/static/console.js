// facegate console: the little behaviour the pages need (no build step, no framework).
"use strict";

function startLive() {
  const table = document.querySelector("#live tbody");
  const tpl = document.getElementById("live-row");
  const state = document.getElementById("live-state");
  if (!table || !tpl) return;
  const source = new EventSource("/live/events");
  source.onopen = () => { state.textContent = "connected"; };
  source.onerror = () => { state.textContent = "reconnecting…"; };
  source.addEventListener("signed-out", () => { source.close(); window.location = "/login?next=/live"; });
  source.addEventListener("decision", (msg) => {
    const e = JSON.parse(msg.data);
    const row = tpl.content.firstElementChild.cloneNode(true);
    row.classList.add(e.decision.toLowerCase());
    row.dataset.upload = e.upload_id;
    const img = row.querySelector("img");
    if (e.snapshot) { img.src = e.snapshot; } else { img.remove(); }
    row.querySelector(".t").textContent = e.time_utc;
    row.querySelector(".door").textContent = e.door;
    row.querySelector(".decision").textContent = e.decision;
    row.querySelector(".reason").textContent = e.reason;
    row.querySelector(".person").textContent = e.person || "-";
    row.querySelector(".distance").textContent = e.distance;
    row.querySelector(".latency").textContent = e.latency_ms ? e.latency_ms + " ms" : "";
    table.prepend(row);
    while (table.rows.length > 200) table.deleteRow(-1);
  });
}

function confirmRevocations() {
  for (const form of document.querySelectorAll("form.revoke")) {
    form.addEventListener("submit", (ev) => {
      const who = form.dataset.person;
      if (!window.confirm("Revoke " + who + "? Their templates, photos and snapshots are erased.")) {
        ev.preventDefault();
      }
    });
  }
}

function enrolWait() {
  const form = document.getElementById("enrol");
  if (!form) return;
  form.addEventListener("submit", () => {
    document.getElementById("enrol-wait").hidden = false;
    form.querySelector("button[type=submit]").disabled = true;
  });
}

function backLinks() {
  for (const a of document.querySelectorAll("a[data-back]")) {
    a.addEventListener("click", (ev) => { ev.preventDefault(); history.back(); });
    a.setAttribute("href", "#");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  startLive();
  confirmRevocations();
  enrolWait();
  backLinks();
});

/* fid review: the single-image view (decisions, relabel with completion, crop with Cropper.js). */
"use strict";
(() => {
  const root = document.getElementById("single");
  const id = +root.dataset.id;
  const W = +root.dataset.width, H = +root.dataset.height;
  const OW = +root.dataset.origWidth, OH = +root.dataset.origHeight;
  const sx = OW / W, sy = OH / H;             // displayed (stored copy) pixels -> original pixels
  const stateEl = document.getElementById("state");
  const info = document.getElementById("crop-info");
  const img = document.getElementById("photo");
  const existing = JSON.parse(root.dataset.crop || "[]");

  const cropper = new Cropper(img, {
    viewMode: 1, autoCrop: existing.length === 4, dragMode: "crop", zoomable: false, zoomOnWheel: false,
    movable: false, rotatable: false, scalable: false, background: false, responsive: true,
    data: existing.length === 4 ? {x: existing[0] / sx, y: existing[1] / sy,
      width: (existing[2] - existing[0]) / sx, height: (existing[3] - existing[1]) / sy} : undefined,
    crop(ev) { info.textContent = box() ? "[" + box().join(", ") + "] original px" : ""; },
    ready() { root.dataset.ready = "1"; },
  });

  function box() {
    const d = cropper.getData();
    if (!d || !d.width || !d.height) return null;
    const x0 = Math.max(0, Math.round(d.x * sx)), y0 = Math.max(0, Math.round(d.y * sy));
    const x1 = Math.min(OW, Math.round((d.x + d.width) * sx)), y1 = Math.min(OH, Math.round((d.y + d.height) * sy));
    return x1 > x0 && y1 > y0 ? [x0, y0, x1, y1] : null;
  }
  function history(d) {
    const li = document.createElement("li");
    li.textContent = "#" + d.id + " " + d.created_at + " " + d.reviewer + " " + d.decision +
      (d.reason ? " " + d.reason : "") + (d.clade ? " " + d.clade : "") +
      (d.crop ? " [" + d.crop.join(", ") + "]" : "") + (d.undoes_id ? " (undoes #" + d.undoes_id + ")" : "");
    document.getElementById("history").appendChild(li);
  }
  function done(res) {
    FID.pushUndo(res.decision.id);
    stateEl.textContent = FID.describe(res.state);
    history(res.decision);
    FID.say(res.decision.decision + " saved");
  }
  async function decide(kind, extra) {
    const res = await FID.post("/api/decisions", Object.assign({image_id: id, decision: kind}, extra || {}));
    done(res);
    return res;
  }
  async function reject() { const r = await FID.pickReason(); if (r) await decide("reject", {reason: r}); }
  async function saveCrop() {
    const b = box();
    if (!b) { FID.say("drag a box on the image first", true); return; }
    await decide("crop", {crop: b});
  }
  async function undo() {
    const res = await FID.undo();
    if (res.decision.image_id === id) { stateEl.textContent = FID.describe(res.state); history(res.decision); }
  }
  const page = JSON.parse(sessionStorage.getItem("fidPage") || '{"ids": []}');
  function go(step) {
    const i = page.ids.indexOf(id);
    const next = page.ids[i + step];
    if (i >= 0 && next !== undefined) location.href = "/image/" + next;
    else if (page.back) location.href = page.back;
  }
  const relabel = document.getElementById("relabel");
  const cladeNames = Array.from(document.querySelectorAll("#clade-list option")).map(o => o.value);
  // Tab completes the typed prefix (case-insensitive) to the first matching clade; the datalist
  // shows every match as you type
  relabel.addEventListener("keydown", e => {
    if (e.key !== "Tab" || !relabel.value) return;
    const typed = relabel.value.toLowerCase();
    const hit = cladeNames.find(n => n.toLowerCase().startsWith(typed)) ||
                cladeNames.find(n => n.toLowerCase().includes(typed));
    if (hit) { relabel.value = hit; e.preventDefault(); }
  });
  document.getElementById("relabel-form").addEventListener("submit", async e => {
    e.preventDefault();
    const name = relabel.value.trim();
    if (!name) return;
    await decide("relabel", {clade: name});
    relabel.blur();
  });
  document.getElementById("accept").addEventListener("click", () => decide("accept"));
  document.getElementById("reject").addEventListener("click", reject);
  document.getElementById("undo").addEventListener("click", undo);
  document.getElementById("prev").addEventListener("click", () => go(-1));
  document.getElementById("next").addEventListener("click", () => go(1));
  document.getElementById("crop-save").addEventListener("click", saveCrop);
  document.getElementById("crop-clear").addEventListener("click", () => cropper.clear());
  document.addEventListener("keydown", e => {
    if (FID.reasonKey(e)) { e.preventDefault(); return; }
    if (e.key === "Escape" && FID.typing(e)) { e.target.blur(); return; }
    if (FID.typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    const k = e.key;
    if (k === "a") decide("accept");
    else if (k === "r") reject();
    else if (k === "u") undo();
    else if (k === "e") relabel.focus();
    else if (k === "c" || k === "Enter") saveCrop();
    else if (k === "x") cropper.clear();
    else if (k === "n" || k === "ArrowRight") go(1);
    else if (k === "p" || k === "ArrowLeft") go(-1);
    else if (k === "g" && page.back) location.href = page.back;
    else return;
    e.preventDefault();
  });
})();

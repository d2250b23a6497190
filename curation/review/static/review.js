/* fid review: shared helpers and the grid page. Plain JavaScript, no build step. */
"use strict";
const FID = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const reasonPairs = JSON.parse(document.getElementById("reasons").textContent);  // [[key, label], ...] in menu order
  const reasons = Object.fromEntries(reasonPairs);
  const reasonKeys = reasonPairs.map(p => p[0]);
  const statusEl = document.getElementById("status");

  function reviewer() { return localStorage.getItem("fidReviewer") || ""; }
  function setReviewer(name) {
    localStorage.setItem("fidReviewer", name);
    document.cookie = "fid_reviewer=" + encodeURIComponent(name) + "; path=/; SameSite=Strict; max-age=31536000";
  }
  function say(msg, bad) {
    statusEl.textContent = msg;
    statusEl.className = bad ? "bad" : "ok";
  }
  async function post(url, payload) {
    const resp = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(Object.assign({reviewer: reviewer()}, payload)),
    });
    const data = await resp.json().catch(() => ({error: resp.statusText}));
    if (!resp.ok) { say(data.error || ("HTTP " + resp.status), true); throw new Error(data.error); }
    return data;
  }
  // undo stack of decision ids made on this page (kept per tab)
  function pushUndo(id) {
    const s = JSON.parse(sessionStorage.getItem("fidUndo") || "[]"); s.push(id);
    sessionStorage.setItem("fidUndo", JSON.stringify(s.slice(-200)));
  }
  async function undo() {
    const s = JSON.parse(sessionStorage.getItem("fidUndo") || "[]");
    const id = s.pop();
    sessionStorage.setItem("fidUndo", JSON.stringify(s));
    const res = await post("/api/undo", id ? {decision_id: id} : {});
    say("undone: image " + res.decision.image_id + " is " + res.state.status);
    return res;
  }
  function describe(state) {
    let t = state.status;
    if (state.reason) t += " (" + state.reason + ")";
    if (state.clade) t += " → " + state.clade;
    if (state.crop) t += " crop [" + state.crop.join(", ") + "]";
    return t;
  }
  // reason picker: a menu shown after "r"; digits 1-8 or a click choose; resolves to a key or null
  let pendingReason = null;
  function pickReason() {
    const menu = document.getElementById("reason-menu");
    menu.hidden = false;
    return new Promise(resolve => { pendingReason = k => { menu.hidden = true; pendingReason = null; resolve(k); }; });
  }
  function reasonKey(e) {
    if (!pendingReason) return false;
    if (e.key === "Escape") { pendingReason(null); return true; }
    const n = parseInt(e.key, 10);
    if (n >= 1 && n <= reasonKeys.length) { pendingReason(reasonKeys[n - 1]); return true; }
    return true;   // swallow other keys while the menu is open
  }
  document.addEventListener("click", e => {
    const b = e.target.closest("#reason-menu [data-reason]");
    if (b && pendingReason) pendingReason(b.dataset.reason);
  });
  function typing(e) {
    const t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
  }
  // reviewer name: asked once, kept in localStorage (mirrored in a cookie for server-rendered pages)
  function askName() {
    const dlg = document.getElementById("name-dialog");
    dlg.hidden = false;
    const input = document.getElementById("reviewer-name");
    input.value = reviewer();
    input.focus();
  }
  document.getElementById("name-form").addEventListener("submit", e => {
    e.preventDefault();
    const name = document.getElementById("reviewer-name").value.trim();
    if (!name) return;
    setReviewer(name);
    location.reload();
  });
  document.getElementById("change-reviewer").addEventListener("click", askName);
  if (!reviewer()) askName();
  else if (!document.cookie.includes("fid_reviewer=")) { setReviewer(reviewer()); location.reload(); }
  return {csrf, reasons, reasonKeys, reviewer, say, post, pushUndo, undo, describe, pickReason, reasonKey, typing};
})();

/* ---- grid page ------------------------------------------------------------------------------ */
(() => {
  if (document.body.dataset.page !== "grid") return;
  const grid = document.getElementById("grid");
  const tiles = () => Array.from(grid.querySelectorAll(".tile"));
  let cur = 0;
  sessionStorage.setItem("fidPage", JSON.stringify({ids: tiles().map(t => +t.dataset.id), back: location.href}));

  function focus(i) {
    const ts = tiles();
    if (!ts.length) return;
    cur = Math.max(0, Math.min(ts.length - 1, i));
    ts.forEach((t, k) => t.classList.toggle("current", k === cur));
    ts[cur].focus({preventScroll: true});
    ts[cur].scrollIntoView({block: "nearest"});
  }
  function show(tile, state) {
    tile.className = tile.className.replace(/state-\S+/, "state-" + state.status);
    tile.querySelector(".st").textContent = FID.describe(state);
    tile.dataset.decided = state.status === "unreviewed" ? "" : "1";
  }
  async function decide(i, kind, reason) {
    const tile = tiles()[i];
    if (!tile) return;
    const res = await FID.post("/api/decisions", {image_id: +tile.dataset.id, decision: kind, reason: reason || null});
    FID.pushUndo(res.decision.id);
    show(tile, res.state);
    FID.say(kind + " image " + tile.dataset.id);
    focus(i + 1);
  }
  async function rejectAsk(i) {
    const r = await FID.pickReason();
    if (r) await decide(i, "reject", r);
  }
  async function bulk(kind, reason) {
    const ids = tiles().filter(t => !t.dataset.decided).map(t => +t.dataset.id);
    if (!ids.length) return;
    const res = await FID.post("/api/decisions/bulk", {image_ids: ids, decision: kind, reason: reason || null});
    for (const r of res.results) {
      FID.pushUndo(r.decision.id);
      const t = grid.querySelector('.tile[data-id="' + r.decision.image_id + '"]');
      if (t) show(t, r.state);
    }
    FID.say(kind + " " + res.results.length + " images");
  }
  async function undo() {
    const res = await FID.undo();
    const t = grid.querySelector('.tile[data-id="' + res.decision.image_id + '"]');
    if (t) { show(t, res.state); focus(tiles().indexOf(t)); }
  }
  function nextPage() {
    const undecided = tiles().filter(t => !t.dataset.decided).length;
    const u = new URL(location.href);
    u.searchParams.set("offset", (+grid.dataset.offset) + undecided);
    location.href = u.toString();
  }
  grid.addEventListener("click", e => {
    const tile = e.target.closest(".tile");
    if (!tile) return;
    const i = tiles().indexOf(tile);
    if (e.target.closest(".act-accept")) decide(i, "accept");
    else if (e.target.closest(".act-reject")) rejectAsk(i);
    else if (!e.target.closest("a")) focus(i);
  });
  document.getElementById("accept-page").addEventListener("click", () => bulk("accept"));
  document.getElementById("reject-page").addEventListener("click",
    () => bulk("reject", document.getElementById("page-reason").value));
  document.getElementById("undo").addEventListener("click", undo);
  document.getElementById("next-page").addEventListener("click", nextPage);
  document.addEventListener("keydown", e => {
    if (FID.reasonKey(e)) { e.preventDefault(); return; }
    if (FID.typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    const k = e.key;
    if (k === "ArrowRight" || k === "l" || k === "j") focus(cur + 1);
    else if (k === "ArrowLeft" || k === "h" || k === "k") focus(cur - 1);
    else if (k === "a") decide(cur, "accept");
    else if (k === "r") rejectAsk(cur);
    else if (k === "A") bulk("accept");
    else if (k === "R") bulk("reject", document.getElementById("page-reason").value);
    else if (k === "u") undo();
    else if (k === "n") nextPage();
    else if (k === "Enter" || k === "o") { const t = tiles()[cur]; if (t) location.href = "/image/" + t.dataset.id; }
    else return;
    e.preventDefault();
  });
  focus(0);
})();

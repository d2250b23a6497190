"""The review web app (Flask): queues, a grid and a single-image view, and a JSON API.

Run it with ``fid review serve``. It binds 127.0.0.1 unless told otherwise; any other address
needs an access token (``--token`` or ``FID_REVIEW_TOKEN``), sent as ``Authorization: Bearer
<token>``, as ``X-Review-Token``, or once as ``?token=`` (the browser session then remembers it).

Every state-changing request (POST) must carry the session's CSRF token in the ``X-CSRF-Token``
header (or a ``csrf_token`` form field); without it the answer is 403. A script gets the token
and the session cookie from ``GET /api/session``. Request bodies are limited to
``MAX_BODY_BYTES``; larger ones get 413.

JSON API (all answers are JSON; errors are ``{"error": "<one line>"}`` with 400, 403, 404 or 413)
-------------------------------------------------------------------------------------------------
``GET  /api/session``
    ``{"csrf": TOKEN}``; sets the session cookie the POSTs must send back.
``GET  /api/queues?reviewer=NAME``
    counts: ``{"unreviewed": {"total": N, "clades": {clade: N}}, "conflicts": N, "second": N,
    "suspects": N}``.
``GET  /api/queue/<unreviewed|conflicts|second|suspects>?reviewer=NAME&clade=C&limit=100&offset=0``
    leases up to ``limit`` images to NAME and returns ``{"items": [{"id", "sha256", "width",
    "height", "orig_width", "orig_height", "clades", "state", "thumb", "image"}]}``.
``GET  /api/images/<id>``
    details: sightings (url, page_url, source, keyword, clade, license), group, decisions, state.
``GET  /api/clades``
    ``{"clades": [names]}`` (for completion).
``POST /api/decisions``  body ``{"image_id", "reviewer", "decision": accept|reject|relabel|crop|reset,
    "reason"?, "clade"?, "crop"?: [x0, y0, x1, y1] in original-image pixels, "note"?}``
    201 ``{"decision": {...}, "state": {...}}``.
``POST /api/decisions/bulk``  body ``{"image_ids": [...], "reviewer", "decision", "reason"?}``
    one transaction; 201 ``{"results": [{"decision", "state"}, ...]}``.
``POST /api/undo``  body ``{"reviewer", "decision_id"?, "image_id"?}``
    undoes ``decision_id``, or the reviewer's latest decision (on ``image_id`` if given) that is
    still its image's latest; 201 ``{"decision", "state"}``.
``POST /api/leases/release``  body ``{"reviewer"}``: ``{"released": N}``.

Images: ``GET /img/<id>`` (the stored copy) and ``GET /thumb/<id>`` (a cached JPEG thumbnail),
both by catalog id only; the file path comes from the catalog, never from the client.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
import tempfile
from pathlib import Path
from urllib.parse import unquote

from flask import Flask, abort, jsonify, redirect, render_template, request, send_file, session
from werkzeug.exceptions import HTTPException

from dataset_db import repo_review as rr
from dataset_db.errors import FidError
from dataset_db.repo import clade_names

MAX_BODY_BYTES = 256 * 1024
THUMB_SIZE = 256
PAGE_SIZE = 60
REASON_LABELS = {
    "not_fossil": "not a fossil", "replica_or_cast": "replica or cast",
    "drawing_or_reconstruction": "drawing or reconstruction", "modern_organism": "modern organism",
    "several_clades": "several clades in one image", "poor_quality": "poor quality",
    "watermark_or_text": "watermark or text", "other": "other",
}
_SHA = re.compile(r"^[0-9a-f]{64}$")
_STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse (ReviewError, one line) to bind a non-loopback address without an access token."""
    if not is_loopback(host) and not token:
        raise rr.ReviewError(f"refusing to serve on {host} without an access token; pass --token or set "
                             "FID_REVIEW_TOKEN (only 127.0.0.1/localhost may go without)")


def safe_store_file(root: Path, rel: str) -> Path | None:
    """``root/rel`` if it is a file inside ``root`` (``rel`` comes from the catalog), else None."""
    if not rel or os.path.isabs(rel) or "\x00" in rel:
        return None
    base = Path(root).resolve()
    path = (base / rel).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


def create_app(catalog, store: Path, *, token: str | None = None, host: str = "127.0.0.1",
               thumbs: Path | None = None, lease_seconds: int = rr.DEFAULT_LEASE_SECONDS,
               secret_key: str | None = None) -> Flask:
    """The Flask app for ``catalog`` with images under ``store``; thumbnails cached in ``thumbs``."""
    check_bind(host, token)
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secret_key or secrets.token_hex(32), MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      TEMPLATES_AUTO_RELOAD=False)
    store = Path(store)
    thumbs = Path(thumbs) if thumbs else store.parent / "review-thumbs"
    app.extensions["fid_review"] = {"catalog": catalog, "store": store, "thumbs": thumbs}

    def tx(fn, *args, **kwargs):
        return rr.run_in_transaction(catalog, fn, *args, **kwargs)

    # ---- security ---------------------------------------------------------------------------

    @app.before_request
    def _guard():
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        if token:
            given = request.headers.get("X-Review-Token") or ""
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                given = auth[7:]
            q = request.args.get("token")
            if q and hmac.compare_digest(q.encode(), token.encode()) and request.method == "GET":
                session["auth"] = True
                return redirect(request.path)
            if not (session.get("auth") or (given and hmac.compare_digest(given.encode(), token.encode()))):
                return _error(401, "access token required (Authorization: Bearer <token> or ?token=)")
        if request.method in _STATE_CHANGING:
            sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
            if not sent or not hmac.compare_digest(sent.encode(), session["csrf"].encode()):
                return _error(403, "missing or wrong CSRF token (send X-CSRF-Token from GET /api/session)")

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'")
        return resp

    @app.errorhandler(rr.NotFoundError)
    def _nf(exc):
        return _error(404, str(exc))

    @app.errorhandler(FidError)
    def _fid(exc):
        return _error(400, str(exc))

    @app.errorhandler(HTTPException)
    def _http(exc):
        if request.path.startswith("/api/"):
            return _error(exc.code or 500, exc.description or exc.name)
        return exc

    # ---- helpers ----------------------------------------------------------------------------

    def body() -> dict:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise rr.ReviewError("expected a JSON object body with Content-Type: application/json")
        return data

    def reviewer_cookie() -> str | None:
        raw = request.cookies.get("fid_reviewer")
        if not raw:
            return None
        try:
            return rr.check_reviewer(unquote(raw))
        except rr.ReviewError:
            return None

    def ctx(**kw):
        return {"csrf": session["csrf"], "reviewer": reviewer_cookie(), "reasons": REASON_LABELS, **kw}

    # ---- pages ------------------------------------------------------------------------------

    @app.get("/")
    def index():
        with catalog.session() as s:
            counts = rr.queue_counts(s, reviewer_cookie())
        return render_template("index.html", counts=counts, **ctx())

    @app.get("/queue/<name>")
    def queue_page(name):
        if name not in rr.QUEUES:
            abort(404)
        clade = request.args.get("clade") or None
        offset = max(0, request.args.get("offset", 0, type=int))
        limit = min(max(1, request.args.get("limit", PAGE_SIZE, type=int)), 500)
        reviewer = reviewer_cookie()
        items = []
        if reviewer:
            ids = tx(rr.claim_queue, name, reviewer, clade=clade, limit=limit, offset=offset, seconds=lease_seconds)
            with catalog.session() as s:
                items = rr.image_summaries(s, ids)
        return render_template("grid.html", queue=name, clade=clade, items=items, offset=offset,
                               limit=limit, **ctx())

    @app.get("/image/<int:image_id>")
    def image_page(image_id):
        with catalog.session() as s:
            detail = rr.image_detail(s, image_id)
            names = clade_names(s)
        return render_template("single.html", img=detail, clades=names, **ctx())

    # ---- files ------------------------------------------------------------------------------

    def _image_file(image_id: int) -> tuple[Path, str]:
        with catalog.session() as s:
            row = rr.store_path_of(s, image_id)
        if row is None:
            abort(404)
        path = safe_store_file(store, row[0])
        if path is None:
            abort(404)
        return path, row[1]

    @app.get("/img/<int:image_id>")
    def image_file(image_id):
        path, sha = _image_file(image_id)
        resp = send_file(path, max_age=86400, etag=sha, conditional=True)
        return resp

    @app.get("/thumb/<int:image_id>")
    def thumb_file(image_id):
        path, sha = _image_file(image_id)
        if not _SHA.match(sha):
            abort(404)
        cached = thumbs / sha[:2] / f"{sha}-{THUMB_SIZE}.jpg"
        if not cached.is_file():
            _make_thumb(path, cached)
        return send_file(cached, mimetype="image/jpeg", max_age=86400, etag=f"{sha}-t", conditional=True)

    # ---- JSON API ---------------------------------------------------------------------------

    @app.get("/api/session")
    def api_session():
        return jsonify(csrf=session["csrf"])

    @app.get("/api/queues")
    def api_queues():
        with catalog.session() as s:
            return jsonify(rr.queue_counts(s, request.args.get("reviewer") or None))

    @app.get("/api/queue/<name>")
    def api_queue(name):
        reviewer = rr.check_reviewer(request.args.get("reviewer"))
        limit = request.args.get("limit", 100, type=int)
        offset = max(0, request.args.get("offset", 0, type=int))
        ids = tx(rr.claim_queue, name, reviewer, clade=request.args.get("clade") or None, limit=limit,
                 offset=offset, seconds=lease_seconds)
        with catalog.session() as s:
            items = rr.image_summaries(s, ids)
        for it in items:
            it["thumb"] = f"/thumb/{it['id']}"
            it["image"] = f"/img/{it['id']}"
        return jsonify(items=items)

    @app.get("/api/images/<int:image_id>")
    def api_image(image_id):
        with catalog.session() as s:
            detail = rr.image_detail(s, image_id)
        detail.pop("store_path", None)
        return jsonify(detail)

    @app.get("/api/clades")
    def api_clades():
        with catalog.session() as s:
            return jsonify(clades=clade_names(s))

    @app.post("/api/decisions")
    def api_decide():
        b = body()
        if not isinstance(b.get("image_id"), int):
            raise rr.ReviewError(f"invalid image_id {b.get('image_id')!r}; expected an integer")
        res = tx(rr.record_decision, b["image_id"], b.get("reviewer"), b.get("decision"), reason=b.get("reason"),
                 clade=b.get("clade"), crop=b.get("crop"), note=b.get("note"))
        return jsonify(res), 201

    @app.post("/api/decisions/bulk")
    def api_decide_bulk():
        b = body()
        ids = b.get("image_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids) or len(ids) > 1000:
            raise rr.ReviewError("invalid image_ids; expected a list of 1 to 1000 integers")
        if b.get("decision") not in ("accept", "reject", "reset"):
            raise rr.ReviewError(f"invalid bulk decision {b.get('decision')!r}; choose from: accept, reject, reset")
        res = tx(rr.record_decisions, ids, b.get("reviewer"), b["decision"], reason=b.get("reason"))
        return jsonify(results=res), 201

    @app.post("/api/undo")
    def api_undo():
        b = body()
        reviewer = rr.check_reviewer(b.get("reviewer"))
        decision_id = b.get("decision_id")
        if decision_id is None:
            with catalog.session() as s:
                decision_id = rr.last_decision_of(s, reviewer, b.get("image_id"))
            if decision_id is None:
                raise rr.NotFoundError(f"reviewer {reviewer!r} has no decision left to undo")
        if not isinstance(decision_id, int):
            raise rr.ReviewError(f"invalid decision_id {decision_id!r}; expected an integer")
        return jsonify(tx(rr.undo_decision, decision_id, reviewer)), 201

    @app.post("/api/leases/release")
    def api_release():
        reviewer = rr.check_reviewer(body().get("reviewer"))
        return jsonify(released=tx(rr.release_leases, reviewer))

    return app


def _error(code: int, message: str):
    resp = jsonify(error=message)
    resp.status_code = code
    return resp


def _make_thumb(src: Path, dest: Path) -> None:
    from PIL import Image

    dest.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        im.draft("RGB", (THUMB_SIZE, THUMB_SIZE))
        im = im.convert("RGB")
        im.thumbnail((THUMB_SIZE, THUMB_SIZE))
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".jpg", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                im.save(fh, "JPEG", quality=80)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def serve(catalog, store: Path, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          thumbs: Path | None = None, lease_seconds: int = rr.DEFAULT_LEASE_SECONDS, ready=None) -> None:
    """Serve until interrupted (a threaded WSGI server; one request per thread)."""
    from werkzeug.serving import make_server

    app = create_app(catalog, store, token=token, host=host, thumbs=thumbs, lease_seconds=lease_seconds)
    server = make_server(host, port, app, threaded=True)
    if ready is not None:
        ready(server)
    server.serve_forever()


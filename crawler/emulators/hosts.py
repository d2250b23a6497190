"""Image hosts: one route per behaviour (see :mod:`crawler.emulators.plan` for the list)."""

from __future__ import annotations

import re
import threading
from html import escape

from .imagegen import IMAGE_KINDS, ImageGen
from .loopback import MAX_DELAY, Request, Response

ROBOTS_TXT = "User-agent: *\nDisallow: /private/\n"
NOAI_HEADER = "noai, noimageai"


class ImageHost:
    """The app behind every image host (and, with ``plan``, the iDigBio media role)."""

    def __init__(self, gen: ImageGen, *, slow_delay: float = 3.0, retry_after: int = 1, plan=None):
        self.gen = gen
        self.slow_delay = slow_delay
        self.retry_after = retry_after
        self.plan = plan  # set for the iDigBio media role: /v2/media/<uuid>
        self._hits: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def __call__(self, req: Request) -> Response:
        segs = [s for s in req.path.split("/") if s]
        if req.path == "/robots.txt":
            return Response.text(ROBOTS_TXT)
        if self.plan is not None and len(segs) == 3 and segs[:2] == ["v2", "media"]:
            return self._media(req, segs[2])
        if not segs:
            return Response.html("<html><body><h1>fid emulator image host</h1></body></html>")
        head = segs[0]
        if head == "img" and len(segs) == 3:
            return self._image(segs[1], segs[2], req)
        if head == "status" and len(segs) >= 2 and segs[1].isdigit():
            return self._status(int(segs[1]))
        if len(segs) == 2:
            name = segs[1]
            if head == "redirect":
                return Response.redirect(f"/img/ok/{name}")
            if head == "redirect-loop":
                target = f"/redirect-loop/{name}" + ("" if req.arg("hop") else "?hop=1")
                return Response.redirect(target)
            if head in ("slow", "drip"):
                delay = min(max(float(req.arg("delay") or self.slow_delay), 0.0), MAX_DELAY)
                resp = self._image("ok", name, req)
                if head == "slow":
                    resp.delay = delay
                else:
                    resp.drip = delay
                return resp
            if head == "private":
                return self._image("ok", name, req)
            if head == "thumb":
                return self._image("thumb", name, req)
            if head == "page" and name.endswith(".html"):
                ident = name[:-5]
                return Response.html(f"<!DOCTYPE html><html><head><title>{escape(ident)}</title></head>"
                                     f"<body><h1>Specimen {escape(ident)}</h1>"
                                     f'<img src="/img/ok/{escape(ident)}.jpg"></body></html>')
        if head == "flaky" and len(segs) == 3 and segs[1].isdigit():
            key = (req.base, req.path)
            with self._lock:
                n = self._hits.get(key, 0)
                self._hits[key] = n + 1
            if n < int(segs[1]):
                return self._status(429)
            return self._image("ok", segs[2], req)
        return self._status(404)

    def hits(self, base: str, path: str) -> int:
        with self._lock:
            return self._hits.get((base, path), 0)

    def _status(self, code: int) -> Response:
        headers = [("Retry-After", str(self.retry_after))] if code in (429, 503) else []
        return Response.html(f"<html><body><h1>{code}</h1></body></html>", code, headers=headers)

    def _image(self, kind: str, name: str, req: Request) -> Response:
        ident, _, ext = name.partition(".")
        if not ident:
            return self._status(404)
        headers = []
        render_kind = kind
        if kind == "noai":
            render_kind = "ok"
            headers.append(("X-Robots-Tag", NOAI_HEADER))
        elif kind == "octet":
            render_kind = "ok"
        if render_kind not in IMAGE_KINDS:
            return self._status(404)
        width = req.int_arg("w", 0) or None
        if width is not None:
            width = max(1, min(width, 4096))
        r = self.gen.render(render_kind, ident, ext, width)
        ctype = "application/octet-stream" if kind == "octet" else r.content_type
        return Response(200, r.body, ctype, headers + [("Cache-Control", "max-age=86400")])

    def _media(self, req: Request, uuid: str) -> Response:
        e = self.plan.by_uuid(uuid) if re.fullmatch(r"[0-9a-f-]{36}", uuid) else None
        if e is None:
            return Response.json({"error": "Media not found", "uuid": uuid}, 404)
        path = e.path.split("?", 1)[0]
        if path.startswith("/private/"):  # the media API has no robots rule; serve the image
            path = "/img/ok/" + path.split("/", 2)[2]
        sub = Request(req.role, req.base, req.method, path, {}, "", req.headers)
        return self(sub)

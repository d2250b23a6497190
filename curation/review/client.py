"""A small client of the review server's JSON API (see :mod:`curation.review.app`), for scripts.

    from curation.review.client import ReviewClient, read_decisions, post_decisions

    with ReviewClient("http://127.0.0.1:8000", reviewer="ana") as rc:
        rc.decide(42, "reject", reason="not_fossil")
        summary = post_decisions(rc, read_decisions("decisions.csv"))

or from a shell::

    python -m curation.review.client --server http://127.0.0.1:8000 --reviewer ana decisions.csv

The CSV has a header. Each row names its image by ``image_id``, ``sha256`` (the stored copy's) or
``url`` (any URL the image was found at) and carries ``decision`` (accept, reject, relabel, crop,
reset) and, as the decision needs, ``reason`` (reject), ``clade`` (relabel), ``crop``
(``x0,y0,x1,y1`` in original-image pixels, or the columns ``crop_x0 .. crop_y1``) and ``note``.
Rows naming images by sha256 or URL are matched against the images in the review queues
(unreviewed and conflicts): images already decided are not looked up again.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dataset_db.errors import FidError

DECISIONS = ("accept", "reject", "relabel", "crop", "reset")
LOOKUP_QUEUES = ("unreviewed", "conflicts")
PAGE = 200


class ReviewClientError(FidError):
    """The server refused a request or could not be reached; or a decisions file is malformed."""


@dataclass
class Decision:
    decision: str
    image_id: int | None = None
    sha256: str | None = None
    url: str | None = None
    reason: str | None = None
    clade: str | None = None
    crop: tuple[int, int, int, int] | None = None
    note: str | None = None
    line: int = 0

    def key(self) -> str:
        if self.image_id is not None:
            return f"image {self.image_id}"
        return f"sha256 {self.sha256}" if self.sha256 else f"url {self.url}"


@dataclass
class PostSummary:
    posted: int = 0
    decisions: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    not_found: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped_repeats: int = 0

    def as_dict(self) -> dict:
        return {"posted": self.posted, "decisions": dict(self.decisions), "reasons": dict(self.reasons),
                "not_found": len(self.not_found), "skipped_repeats": self.skipped_repeats,
                "errors": list(self.errors)}


class ReviewClient:
    """One reviewer's HTTP session with a review server: session cookie, CSRF token, JSON calls."""

    def __init__(self, server: str, reviewer: str, token: str | None = None, timeout: float = 30.0):
        import requests

        if not reviewer or not reviewer.strip():
            raise ReviewClientError("reviewer name is empty; pass --reviewer NAME")
        self.server = server.rstrip("/")
        self.reviewer = reviewer.strip()
        self.timeout = timeout
        self.http = requests.Session()
        self.http.trust_env = False  # a review server on loopback is never behind the user's proxy
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"
        self.csrf: str | None = None

    # -- plumbing
    def __enter__(self) -> "ReviewClient":
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        try:
            if self.csrf:
                self.release()
        except ReviewClientError:
            pass
        self.http.close()

    def _call(self, method: str, path: str, **kw) -> dict:
        import requests

        url = self.server + path
        try:
            r = self.http.request(method, url, timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            raise ReviewClientError(f"cannot reach the review server at {self.server}: "
                                    f"{type(exc).__name__}; is `fid review serve` running?") from None
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code >= 400:
            msg = body.get("error") if isinstance(body, dict) else None
            raise ReviewClientError(f"{method} {path}: HTTP {r.status_code}: {msg or r.text[:200].strip()}")
        return body

    def get(self, path: str, **params) -> dict:
        return self._call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, payload: dict) -> dict:
        if self.csrf is None:
            self.start_session()
        return self._call("POST", path, json=payload, headers={"X-CSRF-Token": self.csrf})

    # -- the API
    def start_session(self) -> str:
        """GET /api/session: the session cookie and its CSRF token (sent with every POST)."""
        self.csrf = self.get("/api/session")["csrf"]
        return self.csrf

    def queues(self) -> dict:
        return self.get("/api/queues", reviewer=self.reviewer)

    def queue(self, name: str, clade: str | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
        """Lease and list up to ``limit`` images of queue ``name``."""
        return self.get(f"/api/queue/{name}", reviewer=self.reviewer, clade=clade, limit=limit,
                        offset=offset)["items"]

    def image(self, image_id: int) -> dict:
        return self.get(f"/api/images/{int(image_id)}")

    def clades(self) -> list[str]:
        return self.get("/api/clades")["clades"]

    def decide(self, image_id: int, decision: str, *, reason: str | None = None, clade: str | None = None,
               crop=None, note: str | None = None) -> dict:
        payload = {"image_id": int(image_id), "reviewer": self.reviewer, "decision": decision}
        for k, v in (("reason", reason), ("clade", clade), ("note", note)):
            if v:
                payload[k] = v
        if crop is not None:
            payload["crop"] = [int(x) for x in crop]
        return self.post("/api/decisions", payload)

    def decide_bulk(self, image_ids, decision: str, reason: str | None = None) -> dict:
        payload = {"image_ids": [int(i) for i in image_ids], "reviewer": self.reviewer, "decision": decision}
        if reason:
            payload["reason"] = reason
        return self.post("/api/decisions/bulk", payload)

    def undo(self, decision_id: int | None = None, image_id: int | None = None) -> dict:
        payload = {"reviewer": self.reviewer}
        if decision_id is not None:
            payload["decision_id"] = int(decision_id)
        if image_id is not None:
            payload["image_id"] = int(image_id)
        return self.post("/api/undo", payload)

    def release(self) -> int:
        return int(self.post("/api/leases/release", {"reviewer": self.reviewer}).get("released", 0))

    def lookup(self, queues=LOOKUP_QUEUES) -> tuple[dict[str, int], dict[str, int]]:
        """``({sha256: id}, {url: id})`` of every image in ``queues`` (leases them to this reviewer)."""
        by_sha: dict[str, int] = {}
        by_url: dict[str, int] = {}
        seen: set[int] = set()
        for q in queues:
            offset = 0
            while True:
                items = self.queue(q, limit=PAGE, offset=offset)
                for it in items:
                    if it["id"] in seen:
                        continue
                    seen.add(it["id"])
                    by_sha[it["sha256"]] = it["id"]
                    for s in self.image(it["id"]).get("sightings", []):
                        by_url.setdefault(s["url"], it["id"])
                if len(items) < PAGE:
                    break
                offset += PAGE
        return by_sha, by_url


# ---- decisions files ------------------------------------------------------------------------------

def _crop(value: str, line: int) -> tuple[int, int, int, int]:
    parts = [p for p in value.replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        box = tuple(int(round(float(p))) for p in parts)
    except ValueError:
        box = ()
    if len(box) != 4:
        raise ReviewClientError(f"line {line}: crop {value!r}; expected x0,y0,x1,y1 in original pixels")
    return box  # type: ignore[return-value]


def parse_row(row: dict, line: int = 0) -> Decision:
    """One CSV row (or dict) -> :class:`Decision`; raises ReviewClientError naming the line."""
    row = {(k or "").strip().lower(): (v or "").strip() if isinstance(v, str) else v for k, v in row.items()}
    decision = (row.get("decision") or "").lower()
    if decision not in DECISIONS:
        raise ReviewClientError(f"line {line}: decision {decision!r}; choose from: {', '.join(DECISIONS)}")
    image_id = row.get("image_id") or row.get("id")
    if image_id not in (None, ""):
        try:
            image_id = int(image_id)
        except (TypeError, ValueError):
            raise ReviewClientError(f"line {line}: image_id {image_id!r} is not an integer") from None
    else:
        image_id = None
    sha, url = row.get("sha256") or None, row.get("url") or None
    if image_id is None and not sha and not url:
        raise ReviewClientError(f"line {line}: no image_id, sha256 or url; one of them names the image")
    crop = None
    if row.get("crop"):
        crop = _crop(str(row["crop"]), line)
    elif all(row.get(k) not in (None, "") for k in ("crop_x0", "crop_y0", "crop_x1", "crop_y1")):
        crop = _crop(",".join(str(row[k]) for k in ("crop_x0", "crop_y0", "crop_x1", "crop_y1")), line)
    d = Decision(decision=decision, image_id=image_id, sha256=sha, url=url, reason=row.get("reason") or None,
                 clade=row.get("clade") or None, crop=crop, note=row.get("note") or None, line=line)
    if decision == "relabel" and not d.clade:
        raise ReviewClientError(f"line {line}: relabel needs a clade")
    if decision == "crop" and d.crop is None:
        raise ReviewClientError(f"line {line}: crop needs crop=x0,y0,x1,y1")
    return d


def read_decisions(path: str | Path) -> list[Decision]:
    """Read a decisions CSV (see the module docstring); the whole file is checked before anything is sent."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "decision" not in [f.strip().lower() for f in reader.fieldnames]:
                raise ReviewClientError(f"{path}: no 'decision' column; expected a header such as "
                                        "image_id,decision,reason,clade,crop,note (or url/sha256 for image_id)")
            return [parse_row(r, line=i) for i, r in enumerate(reader, start=2)]
    except OSError as exc:
        raise ReviewClientError(f"cannot read decisions file {path}: {exc.strerror}") from None


def post_decisions(client: ReviewClient, decisions, stop_on_error: bool = False) -> PostSummary:
    """Post ``decisions`` (Decision objects or dicts) one by one; rows naming images by sha256 or URL
    are resolved through the review queues first. A repeated (image, decision) is sent once."""
    items = [d if isinstance(d, Decision) else parse_row(d, line=i) for i, d in enumerate(decisions, start=1)]
    out = PostSummary()
    by_sha: dict[str, int] = {}
    by_url: dict[str, int] = {}
    if any(d.image_id is None for d in items):
        by_sha, by_url = client.lookup()
    done: set = set()
    try:
        for d in items:
            image_id = d.image_id
            if image_id is None:
                image_id = by_sha.get(d.sha256) if d.sha256 else by_url.get(d.url)
            if image_id is None:
                out.not_found.append(d.key())
                continue
            sig = (image_id, d.decision, d.reason, d.clade, d.crop)
            if sig in done:
                out.skipped_repeats += 1
                continue
            try:
                client.decide(image_id, d.decision, reason=d.reason, clade=d.clade, crop=d.crop, note=d.note)
            except ReviewClientError as exc:
                if stop_on_error:
                    raise
                out.errors.append(f"line {d.line}: {exc}")
                continue
            done.add(sig)
            out.posted += 1
            out.decisions[d.decision] += 1
            if d.reason:
                out.reasons[d.reason] += 1
    finally:
        try:
            client.release()
        except ReviewClientError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m curation.review.client",
                                description="Post review decisions from a CSV file to a running `fid review serve`.")
    p.add_argument("file", help="decisions CSV: image_id|sha256|url, decision, reason, clade, crop, note")
    p.add_argument("--server", required=True, help="review server, e.g. http://127.0.0.1:8000")
    p.add_argument("--reviewer", required=True, help="name recorded with each decision")
    p.add_argument("--token", default=None, help="access token of a server bound beyond loopback "
                                                 "[env FID_REVIEW_TOKEN]")
    p.add_argument("--stop-on-error", action="store_true", help="stop at the first refused decision")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)
    import os

    try:
        decisions = read_decisions(args.file)
        with ReviewClient(args.server, args.reviewer, token=args.token or os.environ.get("FID_REVIEW_TOKEN")) as rc:
            summary = post_decisions(rc, decisions, stop_on_error=args.stop_on_error)
    except ReviewClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    res = summary.as_dict()
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{res['posted']} decisions posted as {args.reviewer}: "
              + (", ".join(f"{k} {v}" for k, v in sorted(res["decisions"].items())) or "none"))
        if res["reasons"]:
            print("reject reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(res["reasons"].items())))
        if res["not_found"]:
            print(f"{res['not_found']} rows name images not in the review queues (not crawled, or decided already)")
        for e in res["errors"]:
            print(f"refused: {e}", file=sys.stderr)
    return 1 if res["errors"] else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

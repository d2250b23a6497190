"""`fid export`: leak-free, stratified, reproducible dataset exports.

What is exported
----------------
* Eligible images: review status ``accepted`` (with ``include_unreviewed``: anything not
  ``rejected``) and, with a licence filter, at least one sighting under an allowed licence.
* Groups come from the catalog (``DupGroup``/``GroupMember``, written by `fid dedup`); an image in
  no group is a group of its own. By default one image per group is exported: the group's
  representative when eligible, else the eligible member with the most original pixels (then the
  lowest id). ``all_members`` exports every eligible member, all in the group's split.
* Effective clade of an image: its review relabel (``ReviewState.clade``) when set, else its one
  sighting clade (``unassigned`` sightings ignored). Several distinct sighting clades and no
  relabel is a label conflict; an image with only ``unassigned`` sightings is never exported.
* A group's clade is *resolved by a curator* when its representative is ``accepted`` with an
  unambiguous effective clade and either (a) the representative was relabelled (at any time), or
  (b) the group is flagged and the representative was accepted by a person (not an ``auto:``
  rule) at or after the group was flagged (``ReviewState.updated_at >= DupGroup.created_at``,
  i.e. an answer from the conflicts queue, not an accept made before dedup saw the conflict).
  The resolved clade then applies to every exported member. Otherwise a
  flagged group (``DupGroup.conflict``) is an **unresolved conflict** and is left out; an
  unflagged group takes the one effective clade of its exported members, and is left out as a
  conflict when those disagree. Everything left out is counted in ``left_out``.
* The reviewed crop (original-image pixels) is scaled to the stored copy and applied; images are
  downscaled so the longer side is at most ``max_side`` (never upscaled). An image that needs
  neither is copied byte for byte.

Splits: see :mod:`curation.splits` (per-clade keyed-hash order cut at the ratio boundaries; the
unit is the group, or with ``group_by="page"`` all groups whose exported images share a web page).

Output (written to a hidden temp folder beside the target and renamed into place in the same
step that commits the catalog rows, so a killed export leaves neither a half-written folder nor
catalog rows; only a ``.tmp-export-*`` folder that can be deleted):
``manifest.csv``, ``ATTRIBUTION.csv``, ``DATASHEET.md``, ``datasheet.json``, plus
``split/clade/<sha256>.jpg`` (folder) or ``tfrecord/<split>-NNNNN-of-NNNNN.tfrecord`` (tfrecord).
With ``csv`` the manifest's ``file`` column is the image's path in the store (no image written,
crop not applied: the ``crop`` column carries it). Nothing in the output depends on the time or
the export's name except the datasheet's ``name``: same catalog + options -> the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dataset_db import __version__ as FID_VERSION
from dataset_db import status as st
from dataset_db.repo_export import ExportError

from .splits import DEFAULT_RATIOS, SPLITS, Unit, assign_splits, moved_items, oversample, parse_ratios, undersample

FORMATS = ("folder", "csv", "tfrecord")
GROUP_BY = ("group", "page")
MANIFEST_FIELDS = ("sha256", "file", "clade", "superclade", "split", "group_id", "source_url", "page_url",
                   "engine", "license", "rights_holder", "crop", "reviewer", "repeat")
ATTRIBUTION_FIELDS = ("file", "license", "rights_holder", "source_page")
LEFT_OUT_KEYS = ("rejected", "unreviewed", "license", "duplicates", "conflict_groups", "conflict_images",
                 "unassigned", "unknown_clade")
UNASSIGNED = "unassigned"
UNKNOWN_LICENSE = "unknown"
TRAIN_EXTRA = "pip install -e '.[train]'"
TMP_PREFIX = ".tmp-export-"
_CONFLICT = "\x00conflict"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

Progress = Callable[[str, int, int], None]


@dataclass
class ExportOptions:
    out: str | os.PathLike | None = None        # default ./exports/NAME
    fmt: str = "folder"
    ratios: tuple[float, float, float] = DEFAULT_RATIOS
    seed: int = 42
    group_by: str = "group"
    all_members: bool = False
    include_unreviewed: bool = False
    licenses: tuple[str, ...] | None = None
    max_side: int = 512
    from_export: str | None = None
    per_class: int | None = None
    oversample_to: int | None = None
    since: str | None = None
    replace: bool = False
    jobs: int | None = None
    shard_size: int = 1000
    quality: int = 95

    def checked(self) -> "ExportOptions":
        if self.fmt not in FORMATS:
            raise ExportError(f"unknown format {self.fmt!r}; choose from: {', '.join(FORMATS)}")
        if self.group_by not in GROUP_BY:
            raise ExportError(f"unknown --group-by {self.group_by!r}; choose from: {', '.join(GROUP_BY)}")
        self.ratios = parse_ratios(self.ratios)
        if int(self.seed) != self.seed or self.seed < 0:
            raise ExportError(f"invalid seed {self.seed!r}; expected an integer >= 0")
        if self.max_side < 16:
            raise ExportError(f"invalid --max-side {self.max_side}; expected at least 16 pixels")
        for label, v in (("--per-class", self.per_class), ("--oversample-to", self.oversample_to)):
            if v is not None and v < 1:
                raise ExportError(f"invalid {label} {v}; expected 1 or more images")
        if self.shard_size < 1:
            raise ExportError(f"invalid shard size {self.shard_size}; expected 1 or more records")
        if self.licenses is not None:
            lic = tuple(x.strip() for x in self.licenses if x and x.strip())
            if not lic:
                raise ExportError("empty --license list; give licence ids such as CC0-1.0,CC-BY-4.0,PDM")
            self.licenses = lic
        if self.from_export and self.licenses:
            raise ExportError("--license cannot be combined with --from-export: the earlier export's val and "
                              "test splits are kept unchanged; filter when making that export")
        return self

    def params(self) -> dict:
        return {"format": self.fmt, "ratios": list(self.ratios), "seed": int(self.seed), "group_by": self.group_by,
                "all_members": self.all_members, "include_unreviewed": self.include_unreviewed,
                "licenses": list(self.licenses) if self.licenses else None, "max_side": self.max_side,
                "from_export": self.from_export, "per_class": self.per_class,
                "oversample_to": self.oversample_to, "since": self.since}


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ExportError(f"invalid export name {name!r}; expected 1-128 letters, digits, '.', '_' or '-' "
                          "starting with a letter or digit")
    return name


# ---- pure helpers ---------------------------------------------------------------------------------

def scale_crop(box, orig_size: tuple[int, int], stored_size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """A crop box in original-image pixels -> the same box on the stored copy (clipped; None
    when there is no crop or it covers the whole image)."""
    if box is None or any(v is None for v in box):
        return None
    (ow, oh), (w, h) = orig_size, stored_size
    sx, sy = w / max(1, ow), h / max(1, oh)
    x0 = min(max(0, int(round(box[0] * sx))), w - 1)
    y0 = min(max(0, int(round(box[1] * sy))), h - 1)
    x1 = min(max(x0 + 1, int(round(box[2] * sx))), w)
    y1 = min(max(y0 + 1, int(round(box[3] * sy))), h)
    if (x0, y0, x1, y1) == (0, 0, w, h):
        return None
    return (x0, y0, x1, y1)


def _safe_dir(name: str) -> str:
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", name).strip(" .") or "_"


def _effective_clade(row, sights: list[dict]) -> str:
    if row.review_clade:
        return row.review_clade
    names = sorted({x["clade"] for x in sights if x["clade"] and x["clade"] != UNASSIGNED})
    if not names:
        return UNASSIGNED
    return names[0] if len(names) == 1 else _CONFLICT


def _attribution(sights: list[dict], allowed: set[str] | None) -> dict | None:
    """The sighting credited for an image: allowed licence, known licence first, then earliest."""
    cands = [x for x in sights if allowed is None or x["license"].lower() in allowed]
    if not cands:
        return None if allowed is not None else {"url": "", "page_url": "", "source": "", "license": UNKNOWN_LICENSE,
                                                 "rights_holder": ""}
    return min(cands, key=lambda x: (x["license"].lower() == UNKNOWN_LICENSE, x["id"]))


def _accepted_since(rep, flagged_at) -> bool:
    """The representative's accept is a curator's answer to the conflict: made by a person (not an
    ``auto:`` rule) at or after the time the group was flagged."""
    return (rep.reviewed_at is not None and flagged_at is not None and rep.reviewed_at >= flagged_at
            and not (rep.reviewer or "").startswith("auto:"))


class _UnionFind:
    def __init__(self):
        self.parent: dict = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


# ---- selection ------------------------------------------------------------------------------------

def select_groups(images: list, sightings: dict[int, list[dict]], clades: set[str], opts: ExportOptions):
    """Pick what to export: ``(groups, left_out, attributions)``; each group is
    ``{"key", "clade", "members": [row, ...]}`` (key = representative's sha256)."""
    allowed = {x.lower() for x in opts.licenses} if opts.licenses else None
    left = dict.fromkeys(LEFT_OUT_KEYS, 0)
    eff: dict[int, str] = {}
    attr: dict[int, dict] = {}
    eligible: set[int] = set()
    members: dict[tuple, list] = defaultdict(list)
    for r in images:
        sights = sightings.get(r.id, [])
        eff[r.id] = _effective_clade(r, sights)
        status = r.status or st.REVIEW_UNREVIEWED
        members[("g", r.group_id) if r.group_id is not None else ("i", r.id)].append(r)
        if status == st.REVIEW_REJECTED:
            left["rejected"] += 1
            continue
        if status != st.REVIEW_ACCEPTED and not opts.include_unreviewed:
            left["unreviewed"] += 1
            continue
        a = _attribution(sights, allowed)
        if a is None:
            left["license"] += 1
            continue
        attr[r.id] = a
        eligible.add(r.id)

    groups = []
    for gkey in sorted(members, key=lambda k: (k[0], k[1])):
        mem = members[gkey]
        first = mem[0]
        rep_id = first.representative_id if gkey[0] == "g" and first.representative_id is not None else first.id
        flagged = bool(first.group_conflict) if gkey[0] == "g" else False
        rep = next((m for m in mem if m.id == rep_id), None)
        if rep is None:   # a representative outside its own group: take the best member instead
            rep = min(mem, key=lambda m: (-m.orig_width * m.orig_height, m.id))
        elig = [m for m in mem if m.id in eligible]
        if not elig:
            continue
        if opts.all_members:
            chosen = sorted(elig, key=lambda m: m.id)
        else:
            chosen = [rep] if rep.id in eligible else [min(elig, key=lambda m: (-m.orig_width * m.orig_height, m.id))]
            left["duplicates"] += len(elig) - 1
        rep_eff = eff.get(rep.id, _CONFLICT)
        resolved = (rep.status == st.REVIEW_ACCEPTED and rep_eff not in (_CONFLICT, UNASSIGNED)
                    and (bool(rep.review_clade) or (flagged and _accepted_since(rep, first.group_created_at))))
        if resolved:
            clade = rep_eff
        else:
            effs = {eff[m.id] for m in chosen}
            real = effs - {UNASSIGNED, _CONFLICT}
            if flagged or _CONFLICT in effs or len(real) > 1:
                left["conflict_groups"] += 1
                left["conflict_images"] += len(chosen)
                continue
            if not real:
                left["unassigned"] += len(chosen)
                continue
            clade = real.pop()
        if clade not in clades:
            left["unknown_clade"] += len(chosen)
            continue
        groups.append({"key": rep.sha256, "clade": clade, "members": chosen})
    return groups, left, attr


def _page_units(groups: list[dict], sightings: dict[int, list[dict]], order: dict[str, int]) -> dict[str, tuple]:
    """With --group-by page: group key -> (unit key, unit clade). Groups whose exported images
    share a page URL form one unit, keyed by the sha256 of its smallest page URL and split
    within its primary clade (the clade holding most of its images; ties in catalog order)."""
    uf = _UnionFind()
    pages_of: dict[str, set[str]] = {}
    for g in groups:
        pages = {x["page_url"] for m in g["members"] for x in sightings.get(m.id, []) if x["page_url"]}
        pages_of[g["key"]] = pages
        uf.find(("g", g["key"]))
        for p in pages:
            uf.union(("g", g["key"]), ("p", p))
    comps: dict = defaultdict(list)
    for g in groups:
        comps[uf.find(("g", g["key"]))].append(g)
    out = {}
    for comp in comps.values():
        pages = set().union(*(pages_of[g["key"]] for g in comp))
        key = hashlib.sha256(("page:" + min(pages)).encode("utf-8")).hexdigest() if pages else comp[0]["key"]
        counts = Counter()
        for g in comp:
            counts[g["clade"]] += len(g["members"])
        primary = min(counts, key=lambda c: (-counts[c], order.get(c, 1 << 30), c))
        for g in comp:
            out[g["key"]] = (key, primary, counts[primary])
    return out


# ---- planning -------------------------------------------------------------------------------------

def _item(row, split: str, clade: str, group_key: str, attr: dict, superclade: str, repeat: int = 0) -> dict:
    crop = None if row.crop_x0 is None else (row.crop_x0, row.crop_y0, row.crop_x1, row.crop_y1)
    return {"image_id": row.id, "sha256": row.sha256, "clade": clade, "superclade": superclade, "split": split,
            "group_key": group_key, "repeat": repeat, "store_path": row.store_path,
            "crop": crop, "stored_crop": scale_crop(crop, (row.orig_width, row.orig_height), (row.width, row.height)),
            "reviewer": row.reviewer or "", "source_url": attr.get("url", ""), "page_url": attr.get("page_url", ""),
            "engine": attr.get("source", ""), "license": attr.get("license", UNKNOWN_LICENSE),
            "rights_holder": attr.get("rights_holder", ""), "file": ""}


def plan_items(inputs: dict, opts: ExportOptions) -> tuple[list[dict], dict]:
    """The export's items (before files are named) and the left-out counts."""
    clades = dict(inputs["clades"])
    order = {name: i for i, (name, _) in enumerate(inputs["clades"])}
    rows = {r.id: r for r in inputs["images"]}
    items: list[dict] = []
    if opts.from_export:
        left = dict.fromkeys(LEFT_OUT_KEYS, 0)
        for prev in inputs["from_items"]:
            if prev["repeat"]:
                continue
            row = rows[prev["image_id"]]
            a = _attribution(inputs["sightings"].get(row.id, []), None)
            items.append(_item(row, prev["split"], prev["clade"], prev["group_key"], a, clades.get(prev["clade"], "")))
    else:
        groups, left, attr = select_groups(inputs["images"], inputs["sightings"], set(clades), opts)
        if opts.group_by == "page":
            unit_of = _page_units(groups, inputs["sightings"], order)
            units = {u[0]: Unit(u[0], u[1], u[2]) for u in unit_of.values()}
            splits = assign_splits(units.values(), opts.ratios, opts.seed)
            for g in groups:
                ukey = unit_of[g["key"]][0]
                for m in g["members"]:
                    items.append(_item(m, splits[ukey], g["clade"], ukey, attr[m.id], clades[g["clade"]]))
        else:
            splits = assign_splits((Unit(g["key"], g["clade"], len(g["members"])) for g in groups),
                                   opts.ratios, opts.seed)
            for g in groups:
                for m in g["members"]:
                    items.append(_item(m, splits[g["key"]], g["clade"], g["key"], attr[m.id], clades[g["clade"]]))
    if opts.per_class is not None:
        by_clade: dict[str, list[dict]] = defaultdict(list)
        for it in items:
            if it["split"] == "train":
                by_clade[it["clade"]].append(it)
        keep = set()
        for clade, its in by_clade.items():
            keep.update(undersample([it["sha256"] for it in its], opts.per_class, opts.seed))
        items = [it for it in items if it["split"] != "train" or it["sha256"] in keep]
    if opts.oversample_to is not None:
        by_clade = defaultdict(list)
        for it in items:
            if it["split"] == "train":
                by_clade[it["clade"]].append(it)
        for clade, its in sorted(by_clade.items()):
            by_sha = {it["sha256"]: it for it in its}
            for sha, rep in oversample(list(by_sha), opts.oversample_to, opts.seed):
                items.append({**by_sha[sha], "repeat": rep})
    items.sort(key=lambda it: (SPLITS.index(it["split"]), order.get(it["clade"], 1 << 30), it["clade"],
                               it["sha256"], it["repeat"]))
    return items, left


def _name_files(items: list[dict], opts: ExportOptions) -> None:
    if opts.fmt == "folder":
        for it in items:
            suffix = f"-r{it['repeat']}" if it["repeat"] else ""
            it["file"] = f"{it['split']}/{_safe_dir(it['clade'])}/{it['sha256']}{suffix}.jpg"
    elif opts.fmt == "csv":
        for it in items:
            it["file"] = it["store_path"]
    else:
        for split in SPLITS:
            its = [it for it in items if it["split"] == split]
            n = max(1, math.ceil(len(its) / opts.shard_size))
            for i, it in enumerate(its):
                it["file"] = f"tfrecord/{split}-{i // opts.shard_size:05d}-of-{n:05d}.tfrecord"


# ---- images ---------------------------------------------------------------------------------------

def render_image(path: Path, crop, max_side: int, quality: int = 95) -> bytes | None:
    """The exported JPEG for a stored image: crop (stored-copy pixels) then downscale so the longer
    side is at most ``max_side``; None when neither applies (copy the stored file as it is)."""
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        if crop is None and max(im.size) <= max_side:
            return None
        im = im.convert("RGB")
        if crop is not None:
            im = im.crop(tuple(crop))
        w, h = im.size
        if max(w, h) > max_side:
            s = max_side / max(w, h)
            im = im.resize((max(1, round(w * s)), max(1, round(h * s))), PILImage.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality)
        return buf.getvalue()


def _image_bytes(store, it: dict, opts: ExportOptions) -> bytes:
    path = store.abs_path(it["store_path"])
    if not path.is_file():
        raise ExportError(f"store file {path} of image {it['image_id']} ({it['sha256'][:12]}) is missing; "
                          "check the --store folder or run `fid doctor`")
    data = render_image(path, it["stored_crop"], opts.max_side, opts.quality)
    return path.read_bytes() if data is None else data


def _write_folder(tmp: Path, store, items: list[dict], opts: ExportOptions, progress: Progress | None) -> None:
    first = [it for it in items if it["repeat"] == 0]
    by_sha = {(it["split"], it["sha256"]): it for it in first}
    for d in sorted({str(Path(it["file"]).parent) for it in items}):
        (tmp / d).mkdir(parents=True, exist_ok=True)

    def one(it):
        (tmp / it["file"]).write_bytes(_image_bytes(store, it, opts))

    done = 0
    with ThreadPoolExecutor(max_workers=opts.jobs or os.cpu_count() or 1) as pool:
        for i in range(0, len(first), 512):
            list(pool.map(one, first[i:i + 512]))
            done += len(first[i:i + 512])
            if progress:
                progress("writing images", done, len(items))
    for it in items:
        if it["repeat"]:
            src = tmp / by_sha[(it["split"], it["sha256"])]["file"]
            try:
                os.link(src, tmp / it["file"])
            except OSError:
                shutil.copyfile(src, tmp / it["file"])
    if progress:
        progress("writing images", len(items), len(items))


def _tensorflow():
    try:
        import tensorflow as tf  # noqa: PLC0415 - heavy, only for this format
    except ImportError:
        raise ExportError(f"--format tfrecord needs TensorFlow, which is not installed; run: {TRAIN_EXTRA}") from None
    return tf


def _write_tfrecord(tmp: Path, store, items: list[dict], labels: list[str], opts: ExportOptions,
                    progress: Progress | None) -> None:
    tf = _tensorflow()
    (tmp / "tfrecord").mkdir()
    (tmp / "tfrecord" / "labels.txt").write_text("".join(f"{c}\n" for c in labels), encoding="utf-8")
    label_of = {c: i for i, c in enumerate(labels)}

    def feat_bytes(v: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def feat_int(v: int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

    by_file: dict[str, list[dict]] = defaultdict(list)
    for it in items:
        by_file[it["file"]].append(it)
    done = 0
    with ThreadPoolExecutor(max_workers=opts.jobs or os.cpu_count() or 1) as pool:
        for fname, its in by_file.items():
            with tf.io.TFRecordWriter(str(tmp / fname)) as w:
                for it, data in zip(its, pool.map(lambda x: _image_bytes(store, x, opts), its)):
                    ex = tf.train.Example(features=tf.train.Features(feature={
                        "image/encoded": feat_bytes(data), "image/format": feat_bytes(b"jpeg"),
                        "image/sha256": feat_bytes(it["sha256"].encode()),
                        "image/class/label": feat_int(label_of[it["clade"]]),
                        "image/class/text": feat_bytes(it["clade"].encode("utf-8")),
                        "image/split": feat_bytes(it["split"].encode()), "image/repeat": feat_int(it["repeat"])}))
                    w.write(ex.SerializeToString())
            done += len(its)
            if progress:
                progress("writing tfrecords", done, len(items))


# ---- manifest, attribution, datasheet -------------------------------------------------------------

def _csv_text(header, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def manifest_text(items: list[dict]) -> str:
    return _csv_text(MANIFEST_FIELDS, (
        [it["sha256"], it["file"], it["clade"], it["superclade"], it["split"], it["group_key"], it["source_url"],
         it["page_url"], it["engine"], it["license"], it["rights_holder"],
         "" if it["crop"] is None else ",".join(str(v) for v in it["crop"]), it["reviewer"], it["repeat"]]
        for it in items))


def attribution_text(items: list[dict]) -> str:
    return _csv_text(ATTRIBUTION_FIELDS, ([it["file"], it["license"], it["rights_holder"], it["page_url"]
                                           or it["source_url"]] for it in items if it["repeat"] == 0))


def datasheet(name: str, items: list[dict], left: dict, inputs: dict, opts: ExportOptions, moved: dict | None) -> dict:
    per: dict[str, dict] = {}
    for i, (clade, sup) in enumerate(inputs["clades"]):
        per[clade] = {"order": i, "clade": clade, "superclade": sup, "train": 0, "val": 0, "test": 0, "total": 0,
                      "train_repeats": 0}
    sources, licenses = Counter(), Counter()
    for it in items:
        row = per.setdefault(it["clade"], {"order": len(per), "clade": it["clade"], "superclade": it["superclade"],
                                           "train": 0, "val": 0, "test": 0, "total": 0, "train_repeats": 0})
        if it["repeat"]:
            row["train_repeats"] += 1
            continue
        row[it["split"]] += 1
        row["total"] += 1
        sources[it["engine"] or "(none)"] += 1
        licenses[it["license"]] += 1
    images = sum(licenses.values())
    counts = {sp: sum(r[sp] for r in per.values()) for sp in SPLITS}
    counts.update(images=images, files=len(items))
    return {
        "name": name, "fid_version": FID_VERSION, "taxonomy_version": inputs["taxonomy_version"],
        "format": opts.fmt, "seed": int(opts.seed), "ratios": list(opts.ratios), "params": opts.params(),
        "counts": counts, "per_clade": [r for r in sorted(per.values(), key=lambda r: r["order"]) if r["total"]],
        "sources": dict(sorted(sources.items())), "licenses": dict(sorted(licenses.items())),
        "license_unknown_share": round(licenses.get(UNKNOWN_LICENSE, 0) / images, 4) if images else 0.0,
        "reject_reasons": inputs["reject_reasons"], "dedup": inputs["dedup"],
        "dedup_thresholds": sorted({d["threshold"] for d in inputs["dedup"]}),
        "left_out": left,
        "since": None if moved is None else {"export": opts.since, "moved": len(moved["moved"]),
                                             "added": moved["added"], "dropped": moved["dropped"]},
    }


def datasheet_markdown(ds: dict) -> str:
    p = ds["params"]
    lines = [f"# Datasheet: {ds['name']}", "",
             f"Made by fid {ds['fid_version']} from taxonomy {ds['taxonomy_version'] or '(none)'}; "
             f"format `{ds['format']}`, seed {ds['seed']}, ratios train/val/test "
             f"{'/'.join(f'{r:g}' for r in ds['ratios'])}, split unit: {p['group_by']}.",
             f"Selection: {'accepted and unreviewed' if p['include_unreviewed'] else 'accepted'} images, "
             f"{'every group member' if p['all_members'] else 'one image per duplicate group'}"
             + (f", licences {', '.join(p['licenses'])}" if p["licenses"] else "")
             + (f", from export {p['from_export']}" if p["from_export"] else "")
             + (f", {p['per_class']} train images per class" if p["per_class"] else "")
             + (f", train oversampled to {p['oversample_to']} per class" if p["oversample_to"] else "") + ".",
             f"Near-duplicate thresholds: {', '.join(map(str, ds['dedup_thresholds'])) or '(no dedup run)'}.",
             "", "## Images per clade and split", "",
             "| Order | Clade | Superclade | Training set | Validation set | Test set | Total |",
             "|---:|---|---|---:|---:|---:|---:|"]
    for r in ds["per_clade"]:
        rep = f" (+{r['train_repeats']} repeats)" if r["train_repeats"] else ""
        lines.append(f"| {r['order']} | {r['clade']} | {r['superclade']} | {r['train']}{rep} | {r['val']} | "
                     f"{r['test']} | {r['total']} |")
    c = ds["counts"]
    lines.append(f"| | **Total** | | {c['train']} | {c['val']} | {c['test']} | {c['images']} |")
    lines += ["", "## Sources", "", "| Source | Images |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in ds["sources"].items()]
    lines += ["", f"## Licences (unknown: {ds['license_unknown_share'] * 100:.1f}%)", "", "| Licence | Images |",
              "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in ds["licenses"].items()]
    lines += ["", "## Left out", "", "| Reason | Count |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in ds["left_out"].items()]
    lines += ["", "## Reject reasons in the catalog", "", "| Reason | Images |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in ds["reject_reasons"].items()]
    lines += ["", "Attribution for every file: `ATTRIBUTION.csv`; full provenance: `manifest.csv`.", ""]
    return "\n".join(lines)


# ---- the export ---------------------------------------------------------------------------------

def load_inputs(s, opts: ExportOptions) -> dict:
    from dataset_db import repo_export as rx

    inputs = {"images": rx.load_images(s), "sightings": rx.load_sightings(s), "clades": rx.clade_table(s),
              "taxonomy_version": rx.taxonomy_version(s), "dedup": rx.dedup_settings(s),
              "reject_reasons": rx.reject_reasons(s), "from_items": None, "since_items": None}
    if opts.from_export:
        inputs["from_items"] = rx.export_members(s, opts.from_export)
    if opts.since:
        inputs["since_items"] = rx.export_members(s, opts.since)
    return inputs


def run_export(catalog, store_root, name: str, opts: ExportOptions | None = None,
               progress: Progress | None = None) -> dict:
    """Make export ``name``: select, split, write the files, record the membership. Returns a
    summary dict (counts, per-clade table, left-out counts, moved images with ``since``)."""
    from dataset_db import repo_export as rx

    from .store import ImageStore

    t0 = time.monotonic()
    opts = (opts or ExportOptions()).checked()
    check_name(name)
    out = Path(opts.out) if opts.out else Path("exports") / name
    out = out.resolve()
    with catalog.session() as s:
        if rx.find_export(s, name) is not None and not opts.replace:
            raise ExportError(f"export {name!r} already exists in the catalog; choose another name or pass --replace")
        inputs = load_inputs(s, opts)
    if out.exists() and not opts.replace:
        raise ExportError(f"output folder {out} already exists; choose another --out or pass --replace")
    if out.exists() and not out.is_dir():
        raise ExportError(f"output path {out} is a file; expected a folder path")
    items, left = plan_items(inputs, opts)
    _name_files(items, opts)
    moved = None
    if opts.since:
        prev = {it["sha256"]: it["split"] for it in inputs["since_items"] if not it["repeat"]}
        cur = {it["sha256"]: it["split"] for it in items if not it["repeat"]}
        moved = moved_items(prev, cur)
    ds = datasheet(name, items, left, inputs, opts, moved)
    store = ImageStore(store_root)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{name}-", dir=out.parent))
    old: Path | None = None
    swapped = False
    try:
        if opts.fmt == "folder":
            _write_folder(tmp, store, items, opts, progress)
        elif opts.fmt == "tfrecord":
            labels = [r["clade"] for r in ds["per_clade"]]
            _write_tfrecord(tmp, store, items, labels, opts, progress)
        (tmp / "manifest.csv").write_text(manifest_text(items), encoding="utf-8", newline="")
        (tmp / "ATTRIBUTION.csv").write_text(attribution_text(items), encoding="utf-8", newline="")
        (tmp / "datasheet.json").write_text(json.dumps(ds, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "DATASHEET.md").write_text(datasheet_markdown(ds), encoding="utf-8")
        counts = {**{sp: ds["counts"][sp] for sp in SPLITS}, "images": ds["counts"]["images"],
                  "files": ds["counts"]["files"], "left_out": left}
        with catalog.session() as s:
            rx.record_export(s, name, items, params=opts.params(), counts=counts,
                             taxonomy_version=inputs["taxonomy_version"], out_dir=str(out), replace=opts.replace)
            s.flush()
            if out.exists():
                old = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}old-{name}-", dir=out.parent))
                os.replace(out, old / "export")
            os.replace(tmp, out)
            swapped = True
    except BaseException:
        if swapped:
            os.replace(out, tmp)
        if old is not None and (old / "export").exists() and not out.exists():
            os.replace(old / "export", out)
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)
    return {"name": name, "out_dir": str(out), "format": opts.fmt, "seed": int(opts.seed),
            "ratios": list(opts.ratios), "taxonomy_version": inputs["taxonomy_version"],
            "counts": ds["counts"], "per_clade": ds["per_clade"], "left_out": left,
            "license_unknown_share": ds["license_unknown_share"],
            "moved": None if moved is None else {"since": opts.since, "count": len(moved["moved"]),
                                                 "added": moved["added"], "dropped": moved["dropped"],
                                                 "images": [{"sha256": m["item"], "from": m["from"], "to": m["to"]}
                                                            for m in moved["moved"]]},
            "seconds": round(time.monotonic() - t0, 3)}

"""The clade taxonomy: loading and validating a taxonomy file, applying it to a catalog, and the
reviewed mapping of the paper's URL lists to clades.

A taxonomy file (TOML, see ``taxonomy.toml`` beside this module) lists the clades with their
superclade, class order, scientific taxon and search keywords, plus explicit ``[[rename]]``
entries. :func:`apply_taxonomy` replaces the catalog's clades with a taxonomy's:

* A clade that images carry (a URL linked to an image has a sighting with it, or a review state
  names it) is never dropped silently: the load is refused unless the file renames or merges it.
* A rename or merge rewrites ``Sighting.clade`` and ``ReviewState.clade`` so queries stay
  simple; ``CladeRename`` keeps the provenance (old name, new name, taxonomy version). Review
  decisions are append-only history and keep the name they were made with, as do runs, exports
  and suspects. ``Sighting.sighting_key`` is not recomputed: it identifies what was seen.
* Every load is recorded in ``TaxonomyVersion``; a version string names one clade set, so a
  load that changes names or orders under an already-recorded version is refused.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import TaxonomyError

DEFAULT_TAXONOMY = Path(__file__).with_name("taxonomy.toml")
FID_LISTS_MAP = Path(__file__).with_name("fid_lists_map.toml")

SUPERCLADES = ("invertebrates", "vertebrates", "plants", "microfossils", "trace fossils")
UNASSIGNED = "unassigned"

_TOP_KEYS = {"version", "description", "defaults", "clade", "rename"}
_CLADE_KEYS = {"order", "name", "superclade", "taxon", "keywords", "negative_keywords", "drop_default_negatives"}
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]+)?$")


@dataclass(frozen=True)
class CladeSpec:
    name: str
    superclade: str
    order: int
    taxon: str = ""
    keywords: dict[str, list[str]] = field(default_factory=dict)
    negative_keywords: list[str] = field(default_factory=list)

    def row(self, version: str) -> dict:
        """Column values of the catalog's ``clades`` row."""
        return {"name": self.name, "superclade": self.superclade, "order_index": self.order,
                "taxonomy_version": version, "keywords": {k: list(v) for k, v in self.keywords.items()},
                "negative_keywords": list(self.negative_keywords), "taxon": self.taxon or None}


@dataclass
class Taxonomy:
    version: str
    clades: list[CladeSpec]
    renames: list[tuple[str, str]] = field(default_factory=list)
    source: str = ""
    description: str = ""

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.clades]

    def get(self, name: str) -> CladeSpec | None:
        """The clade called ``name``, case-insensitively."""
        low = name.lower()
        return next((c for c in self.clades if c.name.lower() == low), None)


# ---- loading ------------------------------------------------------------------------------------

def _strings(value, what: str, fail) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        fail(f"{what} must be a list of non-empty strings, got {value!r}")
    return [v.strip() for v in value]


def load_taxonomy(path: Path | str | None = None) -> Taxonomy:
    """Read and validate a taxonomy file (``None``: the shipped default).

    Raises :class:`TaxonomyError` with one line naming the file and the problem.
    """
    path = Path(path) if path is not None else DEFAULT_TAXONOMY

    def fail(msg: str):
        raise TaxonomyError(f"taxonomy {path}: {msg}")

    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise TaxonomyError(f"cannot read taxonomy {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TaxonomyError(f"taxonomy {path} is not valid TOML: {exc}") from None

    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        fail(f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_TOP_KEYS))}")
    version = raw.get("version")
    if not isinstance(version, str) or not version.strip() or len(version.strip()) > 64:
        fail(f"`version` must be a non-empty string of at most 64 characters, got {version!r}")
    version = version.strip()

    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict) or set(defaults) - {"negative_keywords"}:
        fail("[defaults] may only hold negative_keywords")
    default_neg = _strings(defaults.get("negative_keywords", []), "[defaults].negative_keywords", fail)

    entries = raw.get("clade")
    if not isinstance(entries, list) or not entries:
        fail("no clades; expected [[clade]] tables with name, superclade, order and keywords")

    clades: list[CladeSpec] = []
    seen_names: dict[str, str] = {}
    seen_orders: dict[int, str] = {}
    for i, entry in enumerate(entries, 1):
        label = f"clade #{i}"
        if not isinstance(entry, dict):
            fail(f"{label} is not a table")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 128:
            fail(f"{label}: `name` must be a non-empty string of at most 128 characters, got {name!r}")
        name = name.strip()
        label = f"clade {name!r}"
        unknown = sorted(set(entry) - _CLADE_KEYS)
        if unknown:
            fail(f"{label}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_CLADE_KEYS))}")
        if name.lower() == UNASSIGNED:
            fail(f"{label}: {UNASSIGNED!r} is reserved for URLs without a clade")
        if name.lower() in seen_names:
            fail(f"{label} duplicates {seen_names[name.lower()]!r} (names are compared case-insensitively)")
        seen_names[name.lower()] = name
        superclade = entry.get("superclade")
        if superclade not in SUPERCLADES:
            fail(f"{label}: superclade {superclade!r} is not one of: {', '.join(SUPERCLADES)}")
        order = entry.get("order")
        if not isinstance(order, int) or isinstance(order, bool) or order < 0:
            fail(f"{label}: `order` must be a non-negative integer, got {order!r}")
        if order in seen_orders:
            fail(f"{label}: order {order} is already used by {seen_orders[order]!r}")
        seen_orders[order] = name
        taxon = entry.get("taxon", "")
        if not isinstance(taxon, str):
            fail(f"{label}: `taxon` must be a string (\"\" where none), got {taxon!r}")
        kw = entry.get("keywords")
        if not isinstance(kw, dict) or not kw:
            fail(f"{label}: no keywords; expected e.g. keywords.en = [\"{name.lower()} fossil\"]")
        keywords: dict[str, list[str]] = {}
        for lang, words in kw.items():
            if not _LANG.match(lang):
                fail(f"{label}: keyword language {lang!r} is not a language code such as en, zh")
            keywords[lang] = _strings(words, f"{label}: keywords.{lang}", fail)
        if not any(keywords.values()):
            fail(f"{label}: all keyword lists are empty")
        drop = _strings(entry.get("drop_default_negatives", []), f"{label}: drop_default_negatives", fail)
        stray = [d for d in drop if d not in default_neg]
        if stray:
            fail(f"{label}: drop_default_negatives names {stray[0]!r}, which is not in [defaults].negative_keywords")
        extra = _strings(entry.get("negative_keywords", []), f"{label}: negative_keywords", fail)
        negatives = list(dict.fromkeys([n for n in default_neg if n not in drop] + extra))
        clades.append(CladeSpec(name=name, superclade=superclade, order=order, taxon=taxon.strip(),
                                keywords=keywords, negative_keywords=negatives))

    tax = Taxonomy(version=version, clades=sorted(clades, key=lambda c: c.order), source=str(path),
                   description=str(raw.get("description", "")))

    renames = raw.get("rename", [])
    if not isinstance(renames, list):
        fail("`rename` must be [[rename]] tables with from and to")
    olds: set[str] = set()
    for i, r in enumerate(renames, 1):
        if not isinstance(r, dict) or set(r) != {"from", "to"} or not all(
                isinstance(r[k], str) and r[k].strip() for k in ("from", "to")):
            fail(f"rename #{i} must have exactly `from` and `to` clade names, got {r!r}")
        old, new = r["from"].strip(), r["to"].strip()
        target = tax.get(new)
        if target is None:
            fail(f"rename #{i}: target {new!r} is not a clade of this taxonomy")
        if tax.get(old) is not None:
            fail(f"rename #{i}: {old!r} is still a clade of this taxonomy; remove it or drop the rename")
        if old.lower() == UNASSIGNED or old.lower() in olds:
            fail(f"rename #{i}: {old!r} is renamed twice or is reserved")
        olds.add(old.lower())
        tax.renames.append((old, target.name))
    return tax


# ---- applying to a catalog ----------------------------------------------------------------------

def _carried(s, names: list[str]) -> dict[str, int]:
    """Images carrying each of ``names`` (via a sighting of a linked URL, or a review state)."""
    from sqlalchemy import select

    from .models import ReviewState, Sighting, Url

    if not names:
        return {}
    carried: dict[str, set] = {}
    q = (select(Sighting.clade, Url.image_id).join(Url, Url.id == Sighting.url_id)
         .where(Url.image_id.is_not(None), Sighting.clade.in_(names)).distinct())
    for clade, image_id in s.execute(q):
        carried.setdefault(clade, set()).add(image_id)
    q = select(ReviewState.clade, ReviewState.image_id).where(ReviewState.clade.in_(names))
    for clade, image_id in s.execute(q):
        carried.setdefault(clade, set()).add(image_id)
    return {k: len(v) for k, v in carried.items()}


def apply_taxonomy(s, taxonomy: Taxonomy, dry_run: bool = False) -> dict:
    """Replace the catalog's clades with ``taxonomy``'s, in the caller's transaction.

    Returns a summary: ``version``, ``previous_version``, ``source``, ``added``, ``removed``,
    ``renamed`` and ``merged`` (``[old, new]`` pairs), ``updated`` (same name, other superclade,
    order, taxon or keywords), ``unchanged`` (names), ``sightings_moved``,
    ``review_states_moved``, ``orphaned_sightings`` (sightings of removed clades on URLs without
    an image: they keep the old name) and ``dry_run`` (nothing written).

    A clade whose name differs only in case is renamed. Explicit ``[[rename]]`` entries apply
    when the old name is a catalog clade or is used by sightings or review states; the target
    is a merge when it already existed or several old names go to it. Raises
    :class:`TaxonomyError`, before writing anything, when the load would drop a clade that images
    carry, or when ``version`` is already recorded for another list of clade names and orders.
    """
    from sqlalchemy import delete, func, insert, select, update

    from .models import Clade, CladeRename, ReviewState, Sighting, TaxonomyVersion, utcnow

    src = taxonomy.source or "(in memory)"
    existing = {c.name: c for c in s.scalars(select(Clade))}
    by_lower = {n.lower(): n for n in existing}
    versions = sorted({c.taxonomy_version for c in existing.values()})
    used = {n for n in s.scalars(select(Sighting.clade).distinct()) if n}
    used |= {n for n in s.scalars(select(ReviewState.clade).where(ReviewState.clade.is_not(None)).distinct()) if n}
    used_by_lower = {n.lower(): n for n in used}
    new_lower = {c.name.lower() for c in taxonomy.clades}

    # renames: a change of case, or an explicit [[rename]] whose old name the catalog knows
    moves: list[tuple[str, str]] = []
    for spec in taxonomy.clades:
        old = by_lower.get(spec.name.lower())
        if old is not None and old != spec.name:
            moves.append((old, spec.name))
    explicit = [(by_lower.get(o.lower()) or used_by_lower[o.lower()], n) for o, n in taxonomy.renames
                if o.lower() in by_lower or o.lower() in used_by_lower]
    fan_in: dict[str, int] = {}
    for _, n in explicit:
        fan_in[n] = fan_in.get(n, 0) + 1
    merged = [[o, n] for o, n in explicit if fan_in[n] > 1 or n.lower() in by_lower]
    renamed = [[o, n] for o, n in moves] + [[o, n] for o, n in explicit if [o, n] not in merged]
    moves += explicit
    moved_from = {o for o, _ in moves}
    targets = {n for _, n in explicit}

    added = [c.name for c in taxonomy.clades if c.name.lower() not in by_lower and c.name not in targets]
    removed = sorted(n for n in existing if n.lower() not in new_lower and n not in moved_from)
    updated, unchanged, rows_update, rows_insert = [], [], [], []
    for spec in taxonomy.clades:
        row = spec.row(taxonomy.version)
        old = by_lower.get(spec.name.lower())
        if old is None:
            rows_insert.append(row)
            continue
        cur = existing[old]
        rows_update.append({"id": cur.id, **row})
        if old == spec.name:
            same = (cur.superclade, cur.order_index, cur.keywords, cur.negative_keywords, cur.taxon or None) == (
                row["superclade"], row["order_index"], row["keywords"], row["negative_keywords"], row["taxon"])
            (unchanged if same else updated).append(spec.name)

    carried = _carried(s, removed)
    if carried:
        shown = ", ".join(f"{n} ({k} image{'' if k == 1 else 's'})" for n, k in sorted(carried.items()))
        raise TaxonomyError(
            f"taxonomy {src} would drop clades that images carry: {shown}; keep them or add "
            f"[[rename]] from = \"{min(carried)}\" to = \"<a clade of the new taxonomy>\"")

    labels = [[c.order, c.name] for c in taxonomy.clades]
    recorded = s.scalar(select(TaxonomyVersion).where(TaxonomyVersion.version == taxonomy.version))
    if recorded is not None and (recorded.changes or {}).get("clades", labels) != labels:
        raise TaxonomyError(
            f"taxonomy version {taxonomy.version!r} is already recorded in the catalog with other clade "
            f"names or orders; change `version` in {src}")

    def count(model, col, names):
        if not names:
            return 0
        return s.scalar(select(func.count()).select_from(model).where(col.in_(sorted(names)))) or 0

    summary = {
        "version": taxonomy.version, "previous_version": ", ".join(versions) or None, "source": src,
        "added": added, "removed": removed, "renamed": renamed, "merged": merged,
        "updated": updated, "unchanged": unchanged,
        "sightings_moved": count(Sighting, Sighting.clade, moved_from),
        "review_states_moved": count(ReviewState, ReviewState.clade, moved_from),
        "orphaned_sightings": count(Sighting, Sighting.clade, removed),
        "dry_run": dry_run,
    }
    if dry_run:
        return summary

    gone = removed + [o for o in moved_from if o in existing and o.lower() not in new_lower]
    if gone:
        s.execute(delete(Clade).where(Clade.name.in_(gone)))
    if rows_update:
        s.execute(update(Clade), rows_update)
    if rows_insert:
        s.execute(insert(Clade), rows_insert)
    merge_pairs = {(o, n) for o, n in merged}
    for old, new in moves:
        s.execute(update(Sighting).where(Sighting.clade == old).values(clade=new))
        s.execute(update(ReviewState).where(ReviewState.clade == old).values(clade=new))
    if moves:
        s.execute(insert(CladeRename), [
            {"old_name": o, "new_name": n, "taxonomy_version": taxonomy.version,
             "kind": "merge" if (o, n) in merge_pairs else "rename", "created_at": utcnow()} for o, n in moves])
    changes = {**summary, "clades": labels}
    if recorded is None:
        s.execute(insert(TaxonomyVersion).values(version=taxonomy.version, source=src, changes=changes,
                                                 loaded_at=utcnow()))
    else:
        s.execute(update(TaxonomyVersion).where(TaxonomyVersion.id == recorded.id)
                  .values(source=src, changes=changes, loaded_at=utcnow()))
    for obj in existing.values():   # the rows changed underneath these objects
        if obj in s:
            s.expire(obj)
    return summary


def catalog_clades(s) -> dict:
    """The catalog's clades in class order: ``{"version", "loaded_at", "clades": [...]}``."""
    from sqlalchemy import select

    from .models import Clade, TaxonomyVersion

    rows = list(s.scalars(select(Clade).order_by(Clade.order_index, Clade.name)))
    versions = sorted({r.taxonomy_version for r in rows})
    last = s.scalar(select(TaxonomyVersion).order_by(TaxonomyVersion.loaded_at.desc(), TaxonomyVersion.id.desc())
                    .limit(1))
    return {
        "version": versions[0] if len(versions) == 1 else (", ".join(versions) or None),
        "loaded_at": last.loaded_at.isoformat(timespec="seconds") if last is not None else None,
        "clades": [{"order": r.order_index, "name": r.name, "superclade": r.superclade, "taxon": r.taxon or "",
                    "keywords": r.keywords or {}, "negative_keywords": r.negative_keywords or [],
                    "taxonomy_version": r.taxonomy_version} for r in rows],
    }


def current_clade_name(s, name: str) -> str | None:
    """The catalog's current spelling of ``name``, following recorded renames and merges
    (e.g. an old URL list that still says "Foraminifer"); ``None`` when it leads nowhere."""
    from sqlalchemy import func, select

    from .models import Clade, CladeRename

    seen: set[str] = set()
    while name.lower() not in seen:
        seen.add(name.lower())
        hit = s.scalar(select(Clade.name).where(func.lower(Clade.name) == name.lower()))
        if hit is not None:
            return hit
        nxt = s.scalar(select(CladeRename.new_name).where(func.lower(CladeRename.old_name) == name.lower())
                       .order_by(CladeRename.id.desc()).limit(1))
        if nxt is None:
            return None
        name = nxt
    return None


# ---- the paper's URL lists ----------------------------------------------------------------------

_MAP_ENTRY_KEYS = {"clade", "keyword", "source"}


def _read_fid_lists_map(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise TaxonomyError(f"cannot read URL-list mapping {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TaxonomyError(f"URL-list mapping {path} is not valid TOML: {exc}") from None


def load_fid_lists_map(path: Path | str | None = None) -> dict[str, dict]:
    """The reviewed mapping of the paper's URL lists (``fid_lists_map.toml``).

    Keys are paths relative to the ``URLs/`` folder (``"Bing/Carpoids_source_url.txt"``);
    values are ``{"clade": <clade name or "unassigned">, "source": <"bing", "ebay", ...>,
    "keyword": <the search keyword the file name says>}``. Files that are not URL lists
    (``readme.md``) are not keys: see :func:`fid_lists_ignored`.
    """
    path = Path(path) if path is not None else FID_LISTS_MAP
    raw = _read_fid_lists_map(path)
    out: dict[str, dict] = {}
    for folder, files in raw.items():
        if folder == "ignore":
            continue
        if not isinstance(files, dict):
            raise TaxonomyError(f"URL-list mapping {path}: {folder!r} must be a table of file names")
        for name, entry in files.items():
            rel = f"{folder}/{name}"
            if not isinstance(entry, dict) or set(entry) - _MAP_ENTRY_KEYS or not isinstance(entry.get("clade"), str) \
                    or not entry["clade"].strip() or not isinstance(entry.get("keyword", ""), str):
                raise TaxonomyError(f"URL-list mapping {path}: entry {rel!r} must be "
                                    f"{{ clade = \"...\", keyword = \"...\", source = \"...\" (optional) }}")
            out[rel] = {"clade": entry["clade"].strip(),
                        "source": str(entry.get("source") or folder).strip().lower(),
                        "keyword": entry.get("keyword", "").strip()}
    return out


def fid_lists_ignored(path: Path | str | None = None) -> list[str]:
    """Files of the ``URLs/`` folder that are not URL lists (relative paths, e.g. ``readme.md``)."""
    path = Path(path) if path is not None else FID_LISTS_MAP
    ignore = _read_fid_lists_map(path).get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(i, str) for i in ignore):
        raise TaxonomyError(f"URL-list mapping {path}: `ignore` must be a list of relative paths")
    return list(ignore)


def fid_lists_dir(root: Path | str) -> Path:
    """The ``URLs/`` folder of the paper's lists, given it or the folder that holds it."""
    root = Path(root)
    return root / "URLs" if (root / "URLs").is_dir() else root


def check_fid_lists(root: Path | str, clade_names: list[str] | None = None) -> dict:
    """Compare a copy of the paper's lists with the mapping.

    Returns ``{"unmapped": [files in the folder neither mapped nor ignored], "missing": [mapped
    files absent from the folder], "unknown_clades": {file: clade not in clade_names}}``;
    ``clade_names`` defaults to the shipped taxonomy's.
    """
    urls = fid_lists_dir(root)
    if not urls.is_dir():
        raise TaxonomyError(f"no URL-list folder at {urls}; expected the paper's fid-url-lists/ or its URLs/ folder")
    mapping = load_fid_lists_map()
    ignored = set(fid_lists_ignored())
    present = {p.relative_to(urls).as_posix() for p in urls.rglob("*") if p.is_file()}
    names = {n.lower() for n in (clade_names if clade_names is not None else load_taxonomy().names)}
    names.add(UNASSIGNED)
    return {
        "unmapped": sorted(present - set(mapping) - ignored),
        "missing": sorted(set(mapping) - present),
        "unknown_clades": {f: e["clade"] for f, e in sorted(mapping.items()) if e["clade"].lower() not in names},
    }

"""`fid report`: one static HTML page about a catalog, from crawl to trained model.

``build_report(catalog, store, out_dir)`` writes ``out_dir/index.html``, ``out_dir/report.json`` (every
number the page shows, for scripts and tests) and the pictures it shows under ``out_dir/img/``
(thumbnails and copies of the plots: the page links only relative paths, so the folder can be zipped
or published as it is). The page has no script and loads nothing from the network.

Sections, each with one sentence saying what it shows: the catalog per clade; crawl outcomes per
URL status; duplicate groups and label conflicts; review decisions and reject reasons; the export's
datasheet; training curves; per-clade metrics; the confusion matrix; ROC curves; Grad-CAM examples;
the embedding plot; the top suspects. A part the catalog does not have yet (no export, no training
run, no evaluation, ...) is shown as a short note saying which command makes it.

Which export and model: ``export`` (default: the model's export, else the newest export) and
``model_dir`` (default: the newest training run's folder). The evaluation is read from
``model_dir/eval-test`` (``eval_dir`` overrides), Grad-CAM pictures from ``model_dir/explain/*.png``
(``explain_dir``), the embedding from ``model_dir/embedding.png`` (``embedding``): where
`fid evaluate`, `fid explain --out` and `fid embed --out` put them by default or by convention.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import shutil
from pathlib import Path

from PIL import Image

from dataset_db import status as st
from dataset_db.errors import FidError

THUMB_SIDE = 140
GROUPS_SHOWN = 8
MEMBERS_SHOWN = 6
SUSPECTS_SHOWN = 12
GRADCAM_SHOWN = 6


class ReportError(FidError):
    pass


# ---- reading the catalog ---------------------------------------------------------------------------

def read_catalog(catalog, *, groups: int = GROUPS_SHOWN, suspects_limit: int = SUSPECTS_SHOWN,
                 training_run_id: int | None = None) -> dict:
    """Everything the report needs from the catalog, through the dataset_db read functions."""
    from dataset_db import repo_crawl, repo_dedup, repo_export, repo_review, repo_training
    from dataset_db.repo import status_summary

    with catalog.session() as s:
        summary = status_summary(s)
        statuses = repo_crawl.url_counts(s)
        groups_shown = repo_dedup.report_groups(s, largest=groups)
        dedup = repo_export.dedup_settings(s)
        last = repo_dedup.last_dedup_run(s)
        decisions = repo_review.decision_counts(s)
        reasons = repo_export.reject_reasons(s)
        queues = repo_review.queue_counts(s)
        exports = repo_export.export_names(s)
        run = (repo_training.get_training_run(s, training_run_id) if training_run_id
               else repo_training.latest_training_run(s))
        sus = repo_training.suspects(s, run["id"] if run else None, limit=suspects_limit) if run else []
        for r in sus:
            r["store"] = repo_review.store_path_of(s, r["image_id"])
    return {"summary": summary, "statuses": statuses, "groups": groups_shown, "dedup": dedup,
            "dedup_run": last, "decisions": decisions, "reject_reasons": reasons, "queues": queues,
            "exports": exports, "training_run": run, "suspects": sus}


# ---- HTML helpers -----------------------------------------------------------------------------------

def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _num(x) -> str:
    if isinstance(x, float):
        return f"{x:.3f}"
    if isinstance(x, int):
        return f"{x:,}"
    return _e(x)


def _td(c) -> str:
    num = isinstance(c, (int, float)) and not isinstance(c, bool)
    return f'<td class="n">{_num(c)}</td>' if num else f"<td>{_num(c)}</td>"


def _table(headers: list[str], rows: list[list], cls: str = "", total: list | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in rows)
    foot = ("<tfoot><tr>" + "".join(_td(c) for c in total) + "</tr></tfoot>") if total else ""
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>{foot}</table>'


def _missing(text: str) -> str:
    return f'<p class="missing">{_e(text)}</p>'


class _Pictures:
    """Copies and thumbnails under out/img/, referenced by relative paths."""

    def __init__(self, out: Path, store: Path):
        self.out, self.store = out, Path(store)
        self.dir = out / "img"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files: list[str] = []

    def copy(self, src: Path, name: str) -> str | None:
        if not src or not Path(src).is_file():
            return None
        shutil.copyfile(src, self.dir / name)
        rel = f"img/{name}"
        self.files.append(rel)
        return rel

    def thumb(self, store_path: str | None, name: str) -> str | None:
        if not store_path:
            return None
        src = (self.store / store_path)
        dest = self.dir / name
        try:
            with Image.open(src) as im:
                im.draft("RGB", (THUMB_SIDE * 2, THUMB_SIDE * 2))
                im = im.convert("RGB")
                im.thumbnail((THUMB_SIDE, THUMB_SIDE))
                im.save(dest, "JPEG", quality=82)
        except (OSError, ValueError):
            return None
        rel = f"img/{name}"
        self.files.append(rel)
        return rel


def _figure(src: str | None, caption: str, alt: str, cls: str = "") -> str:
    if not src:
        return f'<figure class="{cls}"><div class="nopic">file missing</div><figcaption>{_e(caption)}</figcaption></figure>'
    return (f'<figure class="{cls}"><img src="{_e(src)}" alt="{_e(alt)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


# ---- sections ---------------------------------------------------------------------------------------

def _section(sid: str, title: str, sentence: str, body: str, present: bool = True) -> dict:
    return {"id": sid, "title": title, "sentence": sentence, "body": body, "present": present}


def _catalog_section(cat: dict) -> tuple[dict, dict]:
    from dataset_db.repo import STATUS_COLUMNS

    rows = [r for r in cat["summary"]["clades"] if r["urls"] or r["images"]]
    data = {"totals": cat["summary"]["totals"], "clades": {r["clade"]: {c: r[c] for c in STATUS_COLUMNS} for r in rows}}
    if not rows:
        body = _missing("The catalog is empty: run `fid crawl --clade NAME`, `fid import urls` or `fid import images`.")
    else:
        body = _table(["clade", *STATUS_COLUMNS], [[r["clade"], *(r[c] for c in STATUS_COLUMNS)] for r in rows],
                      "num", total=["total", *(cat["summary"]["totals"][c] for c in STATUS_COLUMNS)])
    return _section("catalog", "Catalog per clade",
                    "How many image URLs were found for each clade, how many were downloaded or failed, and how many "
                    "unique images, near-duplicates, reviewed and accepted images each clade now has "
                    "(an image seen under two clades counts under both; the total counts it once).",
                    body, bool(rows)), data


def _crawl_section(cat: dict) -> tuple[dict, dict]:
    counts = dict(sorted(cat["statuses"].items(), key=lambda kv: (-kv[1], kv[0])))
    total = sum(counts.values())
    rows = []
    for name, n in counts.items():
        info = st.lookup(name)
        share = n / total if total else 0.0
        bar = f'<span class="bar {info.bucket}" style="width:{max(1, round(share * 200))}px"></span>'
        rows.append(f"<tr><td>{_e(name)}</td><td>{_e(info.bucket)}</td><td class='n'>{n:,}</td><td class='n'>{share:.1%}</td>"
                    f"<td>{bar}</td><td>{_e(info.description)}</td></tr>")
    body = (_missing("No URLs yet: run `fid crawl` or `fid import urls`.") if not counts else
            '<table class="num"><thead><tr><th>status</th><th>bucket</th><th>URLs</th><th>share</th><th></th>'
            f'<th>meaning</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    return _section("crawl", "Crawl outcomes per status",
                    "How every URL the crawls and imports found ended: stored as a new image, a duplicate of one "
                    "already stored, or the reason it failed (broken files, HTTP errors, pictures too small).",
                    body, bool(counts)), {"statuses": counts, "urls": total}


def _dup_section(cat: dict, pics: _Pictures) -> tuple[dict, dict]:
    groups = cat["groups"]
    n_groups = sum(d["groups"] for d in cat["dedup"])
    conflicts = [g for g in groups if g["conflict"]]
    data = {"groups": n_groups, "conflicts": len(conflicts), "shown": [g["id"] for g in groups],
            "settings": cat["dedup"]}
    if cat["dedup_run"] is None and not n_groups:
        return _section("duplicates", "Duplicate groups and label conflicts",
                        "Groups of near-identical pictures (perceptual hashes) and groups found under different clades.",
                        _missing("No duplicate search yet: run `fid dedup`."), False), data
    settings = ", ".join(f"{d['method']} within {d['threshold']} bits" for d in cat["dedup"]) or "none"
    parts = [f"<p>{n_groups:,} groups ({settings}); {len(conflicts):,} with a label conflict, shown first. "
             "Each row starts with the representative the export keeps.</p>"]
    shown = sorted(groups, key=lambda g: (not g["conflict"], -g["size"], g["id"]))[:GROUPS_SHOWN + len(conflicts)]
    for g in shown:
        figs = []
        for m in g["members"][:MEMBERS_SHOWN]:
            src = pics.thumb(m["store_path"], f"dup-{m['sha256'][:16]}.jpg")
            clades = ", ".join(sorted({x["clade"] for x in m["sightings"] if x["clade"]})) or "unassigned"
            rep = "representative; " if m["image_id"] == g["representative_id"] else ""
            figs.append(_figure(src, f"{rep}#{m['image_id']}, {m['distance']} bits; {clades}",
                                f"image {m['image_id']}", "thumb"))
        tag = '<span class="tag conflict">conflict</span>' if g["conflict"] else ""
        more = f" (+{g['size'] - MEMBERS_SHOWN} more)" if g["size"] > MEMBERS_SHOWN else ""
        parts.append(f'<div class="group"><h4>group {g["id"]}: {g["size"]} images, '
                     f'{_e(", ".join(g["clades"]))} {tag}{more}</h4><div class="row">{"".join(figs)}</div></div>')
    return _section("duplicates", "Duplicate groups and label conflicts",
                    "Near-identical pictures (resized, recompressed or cropped copies) grouped by perceptual hash; "
                    "a group sighted under different clades is a label conflict that waits for a curator and "
                    "is left out of exports until resolved.", "".join(parts), True), data


def _review_section(cat: dict) -> tuple[dict, dict]:
    d, reasons, q = cat["decisions"], cat["reject_reasons"], cat["queues"]
    data = {"decisions": d, "reject_reasons": reasons, "queues": q}
    if not d["total"]:
        body = _missing("No review decisions yet: run `fid review serve` (or `fid review auto-accept`).")
    else:
        body = ('<div class="cols"><div><h4>decisions</h4>'
                + _table(["decision", "count"], list(d["by_decision"].items()), "num")
                + "</div><div><h4>by reviewer</h4>"
                + _table(["reviewer", "decisions"], list(d["by_reviewer"].items()), "num")
                + "</div><div><h4>rejected images by reason</h4>"
                + (_table(["reason", "images"], list(reasons.items()), "num") if reasons else "<p>none</p>")
                + "</div><div><h4>waiting in the queues</h4>"
                + _table(["queue", "images"], [["unreviewed", q["unreviewed"]["total"]], ["conflicts", q["conflicts"]],
                                               ["second opinion", q["second"]], ["suspects", q["suspects"]]], "num")
                + "</div></div>")
    return _section("review", "Review decisions and reject reasons",
                    "What curators and automatic rules decided (accept, reject, relabel, crop), who decided, why "
                    "images were rejected, and how many images still wait in each review queue.",
                    body, bool(d["total"])), data


def _export_section(export: dict | None, pics: _Pictures) -> tuple[dict, dict]:
    title = "Export datasheet"
    sentence = ("The leak-free train/validation/test split the model was trained on: images per clade and split, "
                "sources, licences and what was left out and why.")
    if export is None:
        return _section("export", title, sentence, _missing("No export yet: run `fid export NAME`."), False), {}
    out_dir = Path(export["out_dir"]) if export["out_dir"] else None
    sheet = {}
    if out_dir and (out_dir / "datasheet.json").is_file():
        sheet = json.loads((out_dir / "datasheet.json").read_text(encoding="utf-8"))
    data = {"name": export["name"], "counts": export["counts"], "datasheet": sheet}
    parts = [f"<p>export <b>{_e(export['name'])}</b>: "
             + ", ".join(f"{k} {_num(v)}" for k, v in export["counts"].items() if isinstance(v, int)) + "</p>"]
    if sheet:
        per = sheet.get("per_clade", [])
        parts.append(_table(["clade", "superclade", "train", "val", "test", "total"],
                            [[r["clade"], r["superclade"], r["train"], r["val"], r["test"], r["total"]] for r in per],
                            "num", total=["total", "", *(sum(r[k] for r in per) for k in ("train", "val", "test", "total"))]))
        lic = sheet.get("licenses", {})
        parts.append('<div class="cols"><div><h4>sources</h4>'
                     + _table(["source", "images"], list(sheet.get("sources", {}).items()), "num")
                     + "</div><div><h4>licences</h4>" + _table(["licence", "images"], list(lic.items()), "num")
                     + "</div><div><h4>left out</h4>"
                     + _table(["reason", "count"], list(sheet.get("left_out", {}).items()), "num") + "</div></div>")
        md = pics.copy(out_dir / "DATASHEET.md", "DATASHEET.md")
        if md:
            parts.append(f'<p>The full datasheet: <a href="{_e(md)}">DATASHEET.md</a> '
                         f"(seed {_e(sheet.get('seed'))}, ratios {_e(sheet.get('ratios'))}, "
                         f"taxonomy {_e(sheet.get('taxonomy_version'))}).</p>")
    else:
        parts.append(_missing(f"The export folder {out_dir} has no datasheet.json (moved or deleted)."))
    return _section("export", title, sentence, "".join(parts), True), data


def _training_sections(model_dir: Path | None, run: dict | None, pics: _Pictures) -> tuple[list[dict], dict]:
    title = "Training curves"
    sentence = ("Accuracy and loss on the training and validation splits after each epoch: the gap between them "
                "shows over-fitting, a flat curve that training has converged.")
    if model_dir is None:
        return [_section("training", title, sentence, _missing(
            "No training run yet: run `fid train --export NAME --out runs/NAME`."), False)], {}
    labels = {}
    if (model_dir / "labels.json").is_file():
        labels = json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))
    history = []
    if (model_dir / "history.csv").is_file():
        with (model_dir / "history.csv").open(newline="") as fh:
            history = list(csv.DictReader(fh))
    curves = pics.copy(model_dir / "curves.png", "curves.png")
    cfg = labels.get("config", {})
    data = {"model_dir": str(model_dir), "training_run_id": labels.get("training_run_id") or (run or {}).get("id"),
            "arch": labels.get("arch"), "export": labels.get("export"), "epochs": len(history),
            "image_size": labels.get("image_size"), "config": cfg}
    desc = (f"<p>{_e(labels.get('arch', '?'))} at {_e(labels.get('image_size', '?'))} px on export "
            f"<b>{_e(labels.get('export', '?'))}</b>, {len(history)} epochs, optimiser {_e(cfg.get('optimizer', '?'))} "
            f"(lr {_e(cfg.get('lr', '?'))}), augmentation {_e(', '.join(cfg.get('augment', [])) or 'none')}; "
            f"model folder <code>{_e(model_dir)}</code>.</p>")
    if history:
        last = history[-1]
        desc += _table(["", "accuracy", "top-3", "loss"],
                       [["train (last epoch)", float(last.get("accuracy", 0)), float(last.get("top3", 0)),
                         float(last.get("loss", 0))],
                        ["validation (last epoch)", float(last.get("val_accuracy", 0)), float(last.get("val_top3", 0)),
                         float(last.get("val_loss", 0))]], "num small")
    body = desc + (_figure(curves, "training curves", "training and validation accuracy and loss per epoch", "wide")
                   if curves else _missing("curves.png is missing from the model folder."))
    return [_section("training", title, sentence, body, True)], data


def _eval_sections(eval_dir: Path | None, pics: _Pictures) -> tuple[list[dict], dict]:
    metrics_s = "Precision, recall and F1 of every clade on the test split, with the labels it is most often mistaken for."
    cm_s = "Which clade (row: true) the model predicted (column) for each test image: off-diagonal cells are mistakes."
    roc_s = ("True- against false-positive rate of each clade as the decision threshold moves; "
             "the area under the curve (AUC) is 1.0 for a perfect ranking and 0.5 for chance.")
    if eval_dir is None or not (eval_dir / "metrics.json").is_file():
        note = _missing("No evaluation yet: run `fid evaluate --model MODEL_DIR` (writes MODEL_DIR/eval-test).")
        return [_section("metrics", "Per-clade metrics", metrics_s, note, False),
                _section("confusion", "Confusion matrix", cm_s, note, False),
                _section("roc", "ROC curves", roc_s, note, False)], {}
    m = json.loads((eval_dir / "metrics.json").read_text(encoding="utf-8"))
    roc = {}
    if (eval_dir / "roc.json").is_file():
        roc = json.loads((eval_dir / "roc.json").read_text(encoding="utf-8"))
    data = {"dir": str(eval_dir), "top1": m.get("top1"), "top3": m.get("top3"), "n": m.get("n"),
            "per_clade": m.get("per_clade", {}), "micro_auc": roc.get("micro_auc"), "macro_auc": roc.get("macro_auc")}
    rows = []
    for clade, v in m.get("per_clade", {}).items():
        wrong = ", ".join(f"{w['clade']} {w['rate']:.0%}" for w in v.get("confused_with", [])) or "-"
        rows.append([clade, v["precision"], v["recall"], v["f1"], v["support"], wrong])
    head = (f'<p class="headline">test top-1 <b id="top1">{m.get("top1", 0):.3f}</b>, top-3 '
            f'<b id="top3">{m.get("top3", 0):.3f}</b> on <b id="n-test">{m.get("n", 0):,}</b> images</p>')
    metrics_body = head + _table(["clade", "precision", "recall", "F1", "support", "most confused with"], rows, "num")
    cm = pics.copy(eval_dir / "confusion_matrix.png", "confusion_matrix.png")
    rocp = pics.copy(eval_dir / "roc.png", "roc.png")
    auc = (f"<p>AUC micro {roc['micro_auc']:.3f}, macro {roc['macro_auc']:.3f}.</p>"
           if "micro_auc" in roc and "macro_auc" in roc else "")
    return [_section("metrics", "Per-clade metrics", metrics_s, metrics_body, True),
            _section("confusion", "Confusion matrix", cm_s, _figure(cm, "confusion matrix (test split)",
                                                                    "confusion matrix", "wide"), bool(cm)),
            _section("roc", "ROC curves", roc_s, auc + _figure(rocp, "ROC curves (test split)", "ROC curves", "wide"),
                     bool(rocp))], data


def _gradcam_section(explain_dir: Path | None, pics: _Pictures) -> tuple[dict, dict]:
    sentence = ("Where the model looked: Grad-CAM heat maps over test images, warm colours marking the regions "
                "that raised the score of the predicted clade.")
    files = sorted(explain_dir.glob("*.png"))[:GRADCAM_SHOWN] if explain_dir and explain_dir.is_dir() else []
    if not files:
        return _section("gradcam", "Grad-CAM examples", sentence, _missing(
            "No Grad-CAM pictures yet: run `fid explain --model MODEL_DIR IMAGE --out MODEL_DIR/explain/NAME.png`."),
            False), {"files": []}
    figs = [_figure(pics.copy(f, f"gradcam-{i}-{f.name}"), f.stem, f"Grad-CAM of {f.stem}", "cam")
            for i, f in enumerate(files)]
    return _section("gradcam", "Grad-CAM examples", sentence, f'<div class="row">{"".join(figs)}</div>', True), \
        {"files": [f.name for f in files]}


def _embedding_section(embedding: Path | None, pics: _Pictures) -> tuple[dict, dict]:
    sentence = ("The model's pooled features of test images projected to two dimensions (t-SNE, and UMAP when "
                "installed), one colour per clade: well-separated clusters mean the model tells the clades apart.")
    src = pics.copy(embedding, "embedding.png") if embedding else None
    if not src:
        return _section("embedding", "Embedding plot", sentence, _missing(
            "No embedding plot yet: run `fid embed --model MODEL_DIR --out MODEL_DIR/embedding.png`."), False), {}
    return _section("embedding", "Embedding plot", sentence, _figure(src, "embedding of test images", "embedding",
                                                                     "wide"), True), {"file": src}


def _suspects_section(cat: dict, pics: _Pictures) -> tuple[dict, dict]:
    sentence = ("Images whose label the model disputes, from out-of-sample predictions, most suspicious first: "
                "candidates for a second look in the review page's suspects queue.")
    sus = cat["suspects"]
    data = {"shown": [{k: r[k] for k in ("image_id", "given_clade", "predicted_clade", "score")} for r in sus]}
    if not sus:
        msg = ("No suspects yet: run `fid suspects --model MODEL_DIR`." if cat["training_run"]
               else "No suspects yet: train a model, then run `fid suspects --model MODEL_DIR`.")
        return _section("suspects", "Top suspects", sentence, _missing(msg), False), data
    figs = []
    for r in sus:
        store = r.get("store")
        src = pics.thumb(store[0], f"suspect-{store[1][:16]}.jpg") if store else None
        figs.append(_figure(src, f"#{r['image_id']}: labelled {r['given_clade']}, model says "
                                 f"{r['predicted_clade']} ({r['score']:.2f})", f"suspect image {r['image_id']}", "thumb"))
    return _section("suspects", "Top suspects", sentence, f'<div class="row">{"".join(figs)}</div>', True), data


# ---- the page -----------------------------------------------------------------------------------------

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;background:#f6f5f2}
header{background:#2f3b2f;color:#f4f1e8;padding:18px 28px}header h1{margin:0 0 4px;font-size:24px}
header p{margin:2px 0;color:#d7d2c2}nav{padding:8px 28px;background:#e8e4d9;font-size:14px}
nav a{margin-right:12px;color:#2f3b2f}main{padding:8px 28px 40px;max-width:1200px}
section{background:#fff;border:1px solid #ddd8cc;border-radius:6px;padding:12px 18px;margin:16px 0}
section h2{margin:4px 0 2px;font-size:19px}p.what{margin:0 0 10px;color:#555;font-style:italic}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}th,td{border-bottom:1px solid #e6e2d8;padding:3px 9px;text-align:left}
td.n{text-align:right}tfoot td{font-weight:600;border-top:2px solid #bbb}th{background:#f2efe8}
.cols{display:flex;flex-wrap:wrap;gap:26px}.cols h4,.group h4{margin:6px 0 2px;font-size:14px}
.row{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0}figure.thumb{width:150px}
figure.thumb img{max-width:140px;max-height:140px;border:1px solid #ccc}figure.cam img{max-width:360px}
figure.wide img{max-width:100%;height:auto}figcaption{font-size:12px;color:#555}
.nopic{width:140px;height:100px;background:#ddd;color:#666;font-size:12px;display:flex;align-items:center;justify-content:center}
.missing{color:#8a5a00;background:#fff6e0;padding:6px 10px;border-radius:4px}
.tag{font-size:11px;padding:1px 6px;border-radius:8px;background:#ddd}.tag.conflict{background:#f6c7c0;color:#7a1d10}
.bar{display:inline-block;height:10px;background:#7a9a6a}.bar.failed{background:#c9785f}.bar.pending{background:#c8b46a}
p.headline{font-size:17px}code{font-size:12px}
"""


def _page(title: str, subtitle: list[str], sections: list[dict], footer: str) -> str:
    nav = "".join(f'<a href="#{s["id"]}">{_e(s["title"])}</a>' for s in sections)
    body = "".join(
        f'<section id="{s["id"]}" data-present="{str(s["present"]).lower()}"><h2>{_e(s["title"])}</h2>'
        f'<p class="what">{_e(s["sentence"])}</p>{s["body"]}</section>' for s in sections)
    subs = "".join(f"<p>{x}</p>" for x in subtitle)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{_e(title)}</h1>{subs}</header><nav>{nav}</nav><main>{body}"
            f'<section id="next"><h2>Next steps</h2>{footer}</section></main></body></html>\n')


def _resolve_model(model_dir, run: dict | None) -> Path | None:
    if model_dir:
        p = Path(model_dir)
        if not (p / "labels.json").is_file():
            raise ReportError(f"{p} is not a model folder (no labels.json); pass the --out folder of `fid train`")
        return p
    if run and run.get("artefact_path") and (Path(run["artefact_path"]) / "labels.json").is_file():
        return Path(run["artefact_path"])
    return None


def build_report(catalog, store, out_dir, *, export: str | None = None, model_dir=None, eval_dir=None,
                 explain_dir=None, embedding=None, catalog_url: str = "") -> dict:
    """Write the report into ``out_dir``; returns the numbers it shows (also in report.json)."""
    from dataset_db import repo_export

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if (out / "img").is_dir():
            shutil.rmtree(out / "img")
    except OSError as exc:
        raise ReportError(f"cannot write the report folder {out}: {exc.strerror}") from None
    run_id = None
    if model_dir:
        p = Path(model_dir)
        if (p / "labels.json").is_file():
            run_id = json.loads((p / "labels.json").read_text(encoding="utf-8")).get("training_run_id")
    cat = read_catalog(catalog, training_run_id=run_id)
    mdir = _resolve_model(model_dir, cat["training_run"])
    labels = json.loads((mdir / "labels.json").read_text(encoding="utf-8")) if mdir else {}
    export_name = export or labels.get("export") or (cat["exports"][-1] if cat["exports"] else None)
    exp = None
    if export_name:
        with catalog.session() as s:
            exp = repo_export.require_export(s, export_name)
    edir = Path(eval_dir) if eval_dir else (mdir / "eval-test" if mdir else None)
    xdir = Path(explain_dir) if explain_dir else (mdir / "explain" if mdir else None)
    emb = Path(embedding) if embedding else (mdir / "embedding.png" if mdir else None)

    pics = _Pictures(out, Path(store))
    sections: list[dict] = []
    data: dict = {"generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "catalog_url": catalog_url}
    s, data["catalog"] = _catalog_section(cat)
    sections.append(s)
    s, data["crawl"] = _crawl_section(cat)
    sections.append(s)
    s, data["duplicates"] = _dup_section(cat, pics)
    sections.append(s)
    s, data["review"] = _review_section(cat)
    sections.append(s)
    s, data["export"] = _export_section(exp, pics)
    sections.append(s)
    ss, data["training"] = _training_sections(mdir, cat["training_run"], pics)
    sections += ss
    ss, data["evaluation"] = _eval_sections(edir, pics)
    sections += ss
    s, data["gradcam"] = _gradcam_section(xdir, pics)
    sections.append(s)
    s, data["embedding"] = _embedding_section(emb, pics)
    sections.append(s)
    s, data["suspects"] = _suspects_section(cat, pics)
    sections.append(s)
    data["sections"] = {x["id"]: {"title": x["title"], "present": x["present"]} for x in sections}
    data["pictures"] = sorted(set(pics.files))

    t = data["catalog"]["totals"]
    subtitle = [f"catalog {_e(catalog_url)}" if catalog_url else "",
                f"{t['urls']:,} URLs, {t['images']:,} unique images, {t['accepted']:,} accepted; "
                f"written {_e(data['generated_at'])}"]
    ev = data["evaluation"]
    if ev.get("top1") is not None:
        subtitle.append(f"test top-1 {ev['top1']:.3f}, top-3 {ev['top3']:.3f} on {ev['n']:,} images")
    footer = ("<p>Look at the images yourself in the review page on the same catalog: run "
              "<code>fid review serve</code> in the project folder and open "
              "<code>http://127.0.0.1:8000/</code> (queues: unreviewed, conflicts, suspects).</p>"
              "<p>Regenerate this page after new crawls, reviews or training runs with "
              "<code>fid report --out DIR</code>.</p>")
    (out / "index.html").write_text(_page("fid report", [x for x in subtitle if x], sections, footer), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    data["out"] = str(out / "index.html")
    return data

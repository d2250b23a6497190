"""Export items from the catalog -> file paths, labels and crops for the input pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import TrainingError

SPLIT_CHOICES = ("train", "val", "test", "val+test")


def parse_splits(spec: str) -> tuple[str, ...]:
    parts = tuple(p for p in spec.split("+") if p)
    if not parts or any(p not in ("train", "val", "test") for p in parts):
        raise TrainingError(f"unknown split {spec!r}; choose from: {', '.join(SPLIT_CHOICES)}")
    return parts


@dataclass
class ItemSet:
    items: list[dict]
    paths: list[str]
    labels: list[int]
    crops: list
    skipped: dict = field(default_factory=dict)  # clade -> count of items whose clade the model lacks


def read_export(cat, export: str, splits, distinct_images: bool = False) -> tuple[dict, list[dict]]:
    from dataset_db.repo_training import export_items, get_export

    with cat.session() as s:
        return get_export(s, export), export_items(s, export, splits, distinct_images=distinct_images)


def to_itemset(items: list[dict], store: str | Path, class_index: dict[str, int]) -> ItemSet:
    """Keep the items whose clade is one of the model's classes; check the files exist."""
    store = Path(store)
    kept, paths, labels, crops, skipped = [], [], [], [], {}
    for it in items:
        if it["clade"] not in class_index:
            skipped[it["clade"]] = skipped.get(it["clade"], 0) + 1
            continue
        kept.append(it)
        paths.append(str(store / it["store_path"]))
        labels.append(class_index[it["clade"]])
        crops.append(tuple(it["crop"]) if it["crop"] else None)
    missing = [p for p in paths[:1000] if not Path(p).is_file()]
    if missing:
        raise TrainingError(f"image {missing[0]} is not in the store {store}; check --store / FID_STORE")
    return ItemSet(kept, paths, labels, crops, skipped)

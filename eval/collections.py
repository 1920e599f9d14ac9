"""Collections by name (shared, generated stress variants) and the rankings eval.defaults saves
for eval.panel: the data both read, so neither imports the other."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["SHARED", "load_collection", "save_rankings", "load_rankings"]

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_collection(name: str):
    """A Dataset by name: a shared collection, "attributes", or a generated variant of a shared one:
    "long-<shared>" (paragraph queries), "tq-<shared>" (titles as queries, lexically weak),
    "titles-<shared>" (documents cut to their titles)."""
    from .datasets import load_dataset
    from .stress import attribute_collection, long_query_collection, title_document_collection, title_query_collection

    if name == "attributes":
        return attribute_collection()
    variants = {"long": long_query_collection, "tq": title_query_collection, "titles": title_document_collection}
    kind, _, base = name.partition("-")
    if base and kind in variants:
        return variants[kind](load_dataset(SHARED / base))
    return load_dataset(SHARED / name)


def save_rankings(path: Path, **rankings: tuple[np.ndarray, np.ndarray]) -> None:
    """Write (scores, positions) pairs as <name>_scores / <name>_positions arrays of one .npz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"{k}_{part}": arr for k, pair in rankings.items() for part, arr in zip(("scores", "positions"), pair)})


def load_rankings(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with np.load(path) as f:
        names = {k.rsplit("_", 1)[0] for k in f.files}
        return {n: (f[f"{n}_scores"], f[f"{n}_positions"]) for n in names}

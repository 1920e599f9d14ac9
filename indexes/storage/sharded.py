"""A sharded index: one ordinary index directory per shard, all coded with one shared codec.

    DIR/shards.json        {"format": "tessera-sharded", "version": 1, "shards": [names], "n_docs", ...}
    DIR/<name>/            a complete Tessera index (docs/index-format.md), one per shard

Shards of one build are written under fresh names; `shards.json` is replaced atomically when all
of them are complete, and only then are the previous build's shards removed. A build that fails
or is killed part-way leaves the previous sharded index as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from indexes.files import IndexFormatError, fsync_dir, read_json, write_file

__all__ = ["SHARDS_FILE", "is_sharded", "read_shards", "new_shard_names", "commit_shards"]

SHARDS_FILE = "shards.json"
FORMAT_NAME = "tessera-sharded"
FORMAT_VERSION = 1


def is_sharded(directory: str | Path) -> bool:
    return (Path(directory) / SHARDS_FILE).is_file()


def read_shards(directory: str | Path) -> dict:
    """The sharded manifest, its format and version checked, with each shard's folder present."""
    path = Path(directory) / SHARDS_FILE
    manifest = read_json(path, f"{directory}: no sharded Tessera index here ({SHARDS_FILE} missing)")
    if manifest.get("format") != FORMAT_NAME or manifest.get("version") != FORMAT_VERSION:
        raise IndexFormatError(f"{path}: not a {FORMAT_NAME} manifest of version {FORMAT_VERSION}")
    for name in manifest["shards"]:
        if not (Path(directory) / name / "manifest.json").is_file():
            raise IndexFormatError(f"{path}: shard {name} is missing")
    return manifest


def new_shard_names(n_shards: int) -> list[str]:
    build = uuid.uuid4().hex[:8]
    return [f"shard-{build}-{i:03d}" for i in range(n_shards)]


def commit_shards(directory: str | Path, names: list[str], info: dict) -> dict:
    """Make `names` the live shards (atomic rename of shards.json), then delete older shards."""
    directory = Path(directory)
    manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "shards": names, **info}
    write_file(directory / f"{SHARDS_FILE}.tmp", lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    os.replace(directory / f"{SHARDS_FILE}.tmp", directory / SHARDS_FILE)
    fsync_dir(directory)
    for entry in directory.iterdir():
        if entry.is_dir() and entry.name.startswith("shard-") and entry.name not in names:
            shutil.rmtree(entry, ignore_errors=True)
    return manifest

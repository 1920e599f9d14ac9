"""Whole-index verification: every file a manifest names, checked against its recorded size and
CRC32 (docs/index-format.md). Used by `tessera verify`, by every write that copies stored data
(compaction, retraining, maintenance: rotten bytes are never re-signed under a fresh checksum) and
by the server's scrub.

    report = verify_index("idx/")      # one FileCheck per file, of a single or a sharded index
    bad = [c for c in report if not c.ok]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from indexes.files import IndexFormatError, file_problem

__all__ = ["FileCheck", "verify_index", "manifest_files", "require_intact", "BackgroundVerification"]


@dataclass(frozen=True)
class FileCheck:
    """One file's verdict: problem is None when its size and checksum match the manifest."""

    path: Path
    bytes: int
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def manifest_files(directory: Path, manifest: dict, segments: bool = True) -> list[tuple[Path, dict]]:
    """(path, {"bytes", "crc32"}) of every file one index manifest names: codec, segments (unless
    segments=False), tombstones."""
    codec = manifest["codec"]
    files = [(directory / codec["name"] / name, expected) for name, expected in codec["files"].items()]
    for entry in manifest["segments"]:
        if segments:
            files += [(directory / entry["name"] / name, expected) for name, expected in entry["files"].items()]
        if entry.get("deleted"):
            files.append((directory / entry["deleted"]["file"], entry["deleted"]))
    return files


def check(path: Path, expected: dict) -> FileCheck:
    """One file's size and checksum against its manifest entry (indexes.files.file_problem)."""
    return FileCheck(path, expected["bytes"], file_problem(path, expected))


def verify_index(directory: str | Path, manifest: dict | None = None) -> list[FileCheck]:
    """Check every file of the index in `directory` (a sharded one: every shard's), as named by
    `manifest` (default: the committed one). Reads every byte once."""
    from indexes.storage.sharded import is_sharded, read_shards
    from indexes.storage.store import read_manifest

    directory = Path(directory)
    if manifest is None and is_sharded(directory):
        return [c for name in read_shards(directory)["shards"] for c in verify_index(directory / name)]
    manifest = read_manifest(directory) if manifest is None else manifest
    return [check(path, expected) for path, expected in manifest_files(directory, manifest)]


def require_intact(directory: str | Path, manifest: dict, action: str, segments: bool = True) -> None:
    """Raise IndexFormatError naming the first damaged file before `action` copies stored data
    (segments=False: only the codec and the tombstones, what an add or a delete reads)."""
    bad = [c for c in (check(p, e) for p, e in manifest_files(Path(directory), manifest, segments)) if not c.ok]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise IndexFormatError(f"{bad[0].path}: {bad[0].problem}{more}; refusing to {action}: it would copy "
                               "damaged data under a new checksum. Restore the index from a copy or rebuild it")


class BackgroundVerification:
    """Every checksum of one manifest, checked in a daemon thread while the index is already in
    use (an open of a large index need not wait for it, and need not skip it).

    state: "running", then "intact" or "damaged" (problem names the first damaged file);
    `check()` raises IndexFormatError once damage is found, `wait()` blocks until done."""

    def __init__(self, directory: str | Path, manifest: dict):
        import threading

        self.directory, self.manifest = Path(directory), manifest
        self.state, self.problem = "running", None
        self._done = threading.Event()
        threading.Thread(target=self._run, name=f"tessera-verify-{self.directory.name}", daemon=True).start()

    def _run(self) -> None:
        try:
            for path, expected in manifest_files(self.directory, self.manifest):
                result = check(path, expected)
                if not result.ok:
                    self.problem, self.state = f"{result.path}: {result.problem}", "damaged"
                    return
            self.state = "intact"
        except Exception as e:  # noqa: BLE001 - a verification that cannot read a file reports it
            self.problem, self.state = f"{self.directory}: verification failed ({e})", "damaged"
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> str:
        self._done.wait(timeout)
        return self.state

    def check(self) -> None:
        if self.state == "damaged":
            raise IndexFormatError(f"{self.problem} (found by the background verification; "
                                   "the index must be restored from a good copy or rebuilt)")

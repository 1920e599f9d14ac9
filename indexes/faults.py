"""Deterministic crash points for fault-injection tests.

Every durable step of every write calls `point(name)` (names such as "segment:renamed",
"commit:renamed"; `points()` lists them). Normally that does nothing. A test process sets
`crash_at(name, hit)` and the process SIGKILLs itself at the hit-th time `name` is reached,
after appending the name to `log` (so the test can prove the crash landed where it claims).
The setting lives in this module, for the process that sets it; work shipped to other
processes (the shard builds of a Ray cluster) carries it along (`current()` / `restore()`), and
`once=FILE` makes only the first process that reaches the point crash (a retried task goes on).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

__all__ = ["POINTS", "BUILD_POINTS", "point", "crash_at", "reached", "current", "restore"]

POINTS = ("codec:written", "codec:renamed", "segment:files-written", "segment:renamed", "segment:written",
          "tombstone:written", "commit:before-manifest", "commit:manifest-written", "commit:renamed",
          "commit:durable", "cleanup:removed")
BUILD_POINTS = ("shard:encoded",)      # reached by sharded builds only (after a shard is encoded)

_target: tuple[str, int, Path | None, Path | None] | None = None
_counts: dict[str, int] = {}


def crash_at(name: str | None, hit: int = 1, log: str | Path | None = None, once: str | Path | None = None) -> None:
    """Kill this process (SIGKILL) the hit-th time point `name` is reached; None: never.
    once: a file; crash only while it does not exist (it is created just before the crash)."""
    global _target
    if name is not None and name not in POINTS + BUILD_POINTS:
        raise ValueError(f"unknown crash point {name!r}; known: {POINTS + BUILD_POINTS}")
    _target = None if name is None else (name, hit, Path(log) if log else None, Path(once) if once else None)
    _counts.clear()


def current() -> tuple | None:
    """The crash setting of this process, to hand to work done in another one."""
    return _target


def restore(target: tuple | None) -> None:
    """Adopt a setting `current()` gave (in a worker process)."""
    global _target
    _target = target
    _counts.clear()


def reached() -> dict[str, int]:
    """How many times each point was reached since crash_at (for choosing random targets)."""
    return dict(_counts)


def point(name: str) -> None:
    _counts[name] = _counts.get(name, 0) + 1
    if _target is not None and _target[0] == name and _counts[name] == _target[1]:
        if _target[3] is not None:
            if _target[3].exists():
                return
            _target[3].touch()
        if _target[2] is not None:
            with open(_target[2], "a") as f:
                f.write(f"{name}#{_target[1]}\n")
                f.flush()
                os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

"""Deterministic fault injection: every write killed (SIGKILL) at every hit of every crash point,
then randomised kills; after each, the index verifies and holds the old or the new state.

The trials run in their own process (tests/crash_trials.py, which forks one child per kill) so
children start from a plain interpreter, not from pytest's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from indexes import faults

SCRIPT = Path(__file__).resolve().parent / "crash_trials.py"


def test_every_crash_point_of_every_write_leaves_the_old_or_the_new_state():
    done = subprocess.run([sys.executable, str(SCRIPT), "--trials", "30", "--seed", "7"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    # Every point was armed and hit, and both outcomes occurred (before / after the manifest rename).
    assert set(summary["points"]) == set(faults.POINTS)
    assert summary["walk"] == sum(summary["points_reached"].values()) >= 50
    assert summary["random"] == 30 and summary["old"] > 0 and summary["new"] > 0


def test_crash_points_are_inert_unless_armed(tmp_path):
    from conftest import synthetic_batch, synthetic_docs
    from indexes.builder.pipeline import build_index

    faults.crash_at(None)
    build_index(tmp_path, synthetic_batch(5), synthetic_docs(5), recipe="res2", info={"encoder": {}}, vocab_size=500)
    assert faults.reached()["commit:renamed"] == 1
    try:
        faults.crash_at("no-such-point")
    except ValueError as e:
        assert "unknown crash point" in str(e)
    else:
        raise AssertionError("an unknown crash point was accepted")

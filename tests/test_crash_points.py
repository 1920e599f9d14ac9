"""Deterministic fault injection: every crash point of every write, then randomised trials."""

from __future__ import annotations

import pytest

from crash_trials import OPS, Trials


@pytest.fixture(scope="module")
def trials(tmp_path_factory):
    return Trials(tmp_path_factory.mktemp("crash"))


def test_every_write_passes_its_crash_points(trials):
    # The walk would prove nothing if a write skipped the points: each reaches the commit ones.
    for op in OPS:
        assert {"commit:before-manifest", "commit:renamed", "segment:renamed"} <= set(trials.reached[op]) \
            or op == "delete", (op, trials.reached[op])
    assert {"tombstone:written", "commit:renamed"} <= set(trials.reached["delete"])
    assert "codec:renamed" in trials.reached["build"] and "codec:renamed" in trials.reached["retrain"]


def test_a_kill_at_every_crash_point_leaves_the_old_or_the_new_state(trials):
    walk = trials.walk()
    assert len(walk) == sum(len(r) for r in trials.reached.values()) >= 40
    assert {o for _, _, o in walk} == {"old", "new"}


def test_randomised_kills(trials):
    results = trials.random(12, seed=7)     # python tests/crash_trials.py runs hundreds
    assert len(results) == 12

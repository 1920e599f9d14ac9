"""Presets follow the index's size: nprobe and the candidate count grow with the cube root of the
centroid count (retriever/searcher.py), unless the caller sets them."""

from __future__ import annotations

import pytest

from retriever.searcher import PRESETS, Searcher, scaled_candidates, scaled_nprobe


@pytest.mark.parametrize("centroids, nprobe, candidates", [(512, 8, 64), (2048, 8, 64), (8192, 13, 102),
                                                            (16384, 16, 128), (131072, 32, 256)])
def test_the_balanced_preset_grows_with_the_centroid_count(centroids, nprobe, candidates):
    preset = PRESETS["balanced"]
    assert scaled_nprobe(preset["nprobe"], centroids) == nprobe
    assert scaled_candidates(preset["n_candidates"], centroids) == candidates


class _Index:
    """What Searcher.ranker reads of an index, with the engine settings it is asked for."""

    snapshot, n_centroids, encoder_spec = object(), 16384, {"dim": 8}

    def engine(self, **settings):
        return settings


def test_explicit_settings_are_kept_and_preset_ones_scaled():
    assert Searcher(_Index()).ranker["nprobe"] == 16 and Searcher(_Index()).ranker["n_candidates"] == 128
    explicit = Searcher(_Index(), nprobe=4, n_candidates=40).ranker
    assert explicit["nprobe"] == 4 and explicit["n_candidates"] == 40

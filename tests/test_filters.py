"""Metadata filter masks on hand-built metadata."""

from __future__ import annotations

import numpy as np

from server.filters import allowed_mask
from server.models import In, Range

META = [{"year": 2019, "lang": "en", "ok": True}, {"year": 2021, "lang": "fr", "ok": 1},
        {"year": "2021", "lang": "en"}, {}]


def test_equality_range_and_membership():
    assert allowed_mask(META, {"lang": "en"}).tolist() == [True, False, True, False]
    assert allowed_mask(META, {"year": Range(gte=2020)}).tolist() == [False, True, False, False]  # "2021" is no number
    assert allowed_mask(META, {"year": Range(gt=2018, lt=2020), "lang": "en"}).tolist() == [True, False, False, False]
    assert allowed_mask(META, {"lang": In(**{"in": ["fr", "de"]})}).tolist() == [False, True, False, False]


def test_booleans_do_not_match_numbers_and_missing_fields_fail():
    assert allowed_mask(META, {"ok": True}).tolist() == [True, False, False, False]
    assert allowed_mask(META, {"ok": 1}).tolist() == [False, True, False, False]
    assert not allowed_mask(META, {"absent": "x"}).any()
    assert allowed_mask([], {"lang": "en"}).dtype == np.bool_

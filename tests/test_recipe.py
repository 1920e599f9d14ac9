"""Recipe strings: grammar, canonical round trip, clear errors."""

from __future__ import annotations

import pytest

from indexes.builder.recipe import DEFAULT_RECIPE, Recipe


@pytest.mark.parametrize("text", [DEFAULT_RECIPE, "fp16", "res1", "pool3,stop,res4", "kpool2,res2",
                                  "idf25,first128,norm10,res2", "pool2,pca128,res2,c4096",
                                  "merge90,res2", "merge75,stop,res1", "pool2,min16,res2", "kpool3,min8,res2"])
def test_round_trip(text):
    recipe = Recipe.parse(text)
    assert str(recipe) == text
    assert Recipe.parse(str(recipe)) == recipe


def test_fields():
    r = Recipe.parse("res4, stop, pool3, pca64")
    assert (r.pool_factor, r.nbits, r.pca_dim, r.prune.stopwords) == (3, 4, 64, True)
    assert str(r) == "pool3,stop,pca64,res4"
    assert Recipe.parse("pool1,res2") == Recipe.parse("res2")


@pytest.mark.parametrize("text, message", [("pool", "needs a number"), ("res3", "1, 2 or 4"), ("zip9", "unknown part"),
                                           ("res2,fp16", "given twice"), ("stop2", "takes no number"),
                                           ("idf95", "1..90"), ("pool0", "1..16"),
                                           ("merge40", "50..99"), ("pool2,merge90", "given twice"),
                                           ("min16,res2", "needs pool"), ("merge90,min16", "needs pool"),
                                           ("pool2,min0", "1..1024"), ("pool2,min16,min8", "given twice")])
def test_errors(text, message):
    with pytest.raises(ValueError, match=message):
        Recipe.parse(text)

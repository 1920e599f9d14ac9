"""English stopwords for the `stop` pruning rule, mapped to a tokenizer's ids."""

from __future__ import annotations

import numpy as np

__all__ = ["ENGLISH_STOPWORDS", "stopword_token_ids"]

# Function words that carry little meaning on their own (a common core of the usual English lists).
ENGLISH_STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own same she should
so some such than that the their theirs them themselves then there these they this those through to
too under until up very was we were what when where which while who whom why will with would you your
yours yourself yourselves
""".split())


def stopword_token_ids(tokenizer, extra_tokens=()) -> np.ndarray:
    """(n,) int64 sorted ids of the stopwords that are single tokens, plus `extra_tokens`
    (e.g. the punctuation skiplist), for this tokenizer."""
    ids = set()
    for word in list(ENGLISH_STOPWORDS) + list(extra_tokens):
        for variant in (word, word.capitalize()):
            pieces = tokenizer.encode(variant, add_special_tokens=False)
            if len(pieces) == 1 and pieces[0] != tokenizer.unk_token_id:
                ids.add(int(pieces[0]))
    return np.array(sorted(ids), dtype=np.int64)

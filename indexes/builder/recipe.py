"""Index recipes: one string that names how an index is reduced and compressed.

Grammar: comma-separated parts, each at most once, in any order (printed in canonical order):

    pool<N>     hierarchical token pooling, pool factor N (1 = off)          e.g. pool2
    kpool<N>    k-means token pooling instead of hierarchical                 e.g. kpool2
    merge<C>    merge only near-duplicate vectors of a document: groups whose  e.g. merge90
                every pair has cosine >= C/100 (complete linkage), C in 50..99
    min<M>      pooling leaves a document at least M vectors (one of at most   e.g. min32
                M vectors keeps all); with pool<N> / kpool<N> only
    stop        prune stopword and punctuation tokens
    idf<P>      prune the P% lowest-IDF vectors of each document              e.g. idf20
    first<K>    keep each document's first K vectors                          e.g. first128
    norm<P>     prune the P% smallest-norm vectors of each document           e.g. norm10
    pca<D>      project to D dimensions (multiple of 8) before compression    e.g. pca128
    res<B>      residuals quantised to B bits, B in 1, 2, 4                   e.g. res2
    fp16        vectors kept as float16 (no residual quantisation)
    c<N>        number of centroids (default: see codec.default_n_centroids)  e.g. c4096

Example: "pool2,stop,res2". `Recipe.parse(str(r)) == r` for every recipe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from indexes.builder.reduce import PruneRules

__all__ = ["Recipe", "DEFAULT_RECIPE"]

_PART = re.compile(r"^(pool|kpool|merge|min|stop|idf|first|norm|pca|res|fp16|c)(\d*)$")


@dataclass(frozen=True)
class Recipe:
    pool_factor: int = 1
    pool_method: str = "hierarchical"
    merge_cosine: int = 0            # merge<C>: percent; pool_method "threshold"
    min_vectors: int = 0             # min<M>: pooling stops at M vectors per document
    prune: PruneRules = PruneRules()
    pca_dim: int | None = None
    nbits: int = 2
    n_centroids: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Recipe":
        recipe, seen = cls(), set()
        for raw in filter(None, (p.strip() for p in text.split(","))):
            match = _PART.match(raw)
            if not match:
                raise ValueError(f"recipe {text!r}: unknown part {raw!r}; parts: pool<N>, kpool<N>, merge<C>, stop, idf<P>, "
                                 "first<K>, norm<P>, pca<D>, res<1|2|4>, fp16, c<N>")
            name, number = match.group(1), match.group(2)
            family = {"kpool": "pool", "merge": "pool", "fp16": "res"}.get(name, name)
            if family in seen:
                raise ValueError(f"recipe {text!r}: {family!r} given twice")
            seen.add(family)
            needs_number = name not in ("stop", "fp16")
            if needs_number != bool(number):
                raise ValueError(f"recipe {text!r}: {raw!r} " + ("needs a number" if needs_number else "takes no number"))
            n = int(number) if number else 0
            if name in ("pool", "kpool"):
                if not 1 <= n <= 16:
                    raise ValueError(f"recipe {text!r}: pool factor must be 1..16")
                recipe = replace(recipe, pool_factor=n, pool_method="kmeans" if name == "kpool" else "hierarchical")
            elif name == "merge":
                if not 50 <= n <= 99:
                    raise ValueError(f"recipe {text!r}: merge cosine percentage must be 50..99")
                recipe = replace(recipe, pool_method="threshold", merge_cosine=n)
            elif name == "min":
                if not 1 <= n <= 1024:
                    raise ValueError(f"recipe {text!r}: min vectors must be 1..1024")
                recipe = replace(recipe, min_vectors=n)
            elif name == "stop":
                recipe = replace(recipe, prune=replace(recipe.prune, stopwords=True))
            elif name in ("idf", "norm"):
                if not 1 <= n <= 90:
                    raise ValueError(f"recipe {text!r}: {name} percentage must be 1..90")
                field = "idf_fraction" if name == "idf" else "norm_fraction"
                recipe = replace(recipe, prune=replace(recipe.prune, **{field: n / 100}))
            elif name == "first":
                recipe = replace(recipe, prune=replace(recipe.prune, first_k=max(1, n)))
            elif name == "pca":
                recipe = replace(recipe, pca_dim=n)
            elif name == "res":
                if n not in (1, 2, 4):
                    raise ValueError(f"recipe {text!r}: res bits must be 1, 2 or 4")
                recipe = replace(recipe, nbits=n)
            elif name == "fp16":
                recipe = replace(recipe, nbits=16)
            elif name == "c":
                recipe = replace(recipe, n_centroids=n)
        if recipe.min_vectors and (recipe.pool_method == "threshold" or recipe.pool_factor == 1):
            raise ValueError(f"recipe {text!r}: min<M> bounds pooling and needs pool<N> or kpool<N> (N >= 2)")
        return recipe

    def __str__(self) -> str:
        parts = []
        if self.pool_method == "threshold":
            parts.append(f"merge{self.merge_cosine}")
        elif self.pool_factor > 1 or self.pool_method != "hierarchical":
            parts.append(f"{'kpool' if self.pool_method == 'kmeans' else 'pool'}{self.pool_factor}")
        if self.min_vectors:
            parts.append(f"min{self.min_vectors}")
        p = self.prune
        if p.stopwords:
            parts.append("stop")
        if p.idf_fraction:
            parts.append(f"idf{round(p.idf_fraction * 100)}")
        if p.first_k:
            parts.append(f"first{p.first_k}")
        if p.norm_fraction:
            parts.append(f"norm{round(p.norm_fraction * 100)}")
        if self.pca_dim:
            parts.append(f"pca{self.pca_dim}")
        parts.append("fp16" if self.nbits == 16 else f"res{self.nbits}")
        if self.n_centroids:
            parts.append(f"c{self.n_centroids}")
        return ",".join(parts)


# Pooling by 2 with a floor of 16 vectors: documents of up to 16 tokens (titles, records) keep every
# vector (docs/benchmarks.md "Hybrid fusion and short documents").
DEFAULT_RECIPE = "pool2,min16,res2"

"""Where a search call spent its time, stage by stage, for benchmarks and the server's responses.

    timings = Timings()
    ranker.search(queries, k=10, fusion="adaptive", lexical=lexical, timings=timings)
    timings.ms()      # {"first_stage": 1.9, "rescoring": 1.1, "lexical": 0.3, "fusion": 0.02, ...}

Stages (seconds, summed over the queries of the call; queries searched in parallel add up their
own times): encoding (the Searcher's query encoder), first_stage (candidate generation),
rescoring (exact MaxSim of the candidates), dense (the whole dense side, first stage and
rescoring included, with projection and bookkeeping), lexical (query terms, collection
statistics and BM25), fusion. A search without a Timings records nothing and pays nothing.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

__all__ = ["Timings", "STAGES", "maybe"]

STAGES = ("encoding", "first_stage", "rescoring", "dense", "lexical", "fusion", "passages")


class Timings(dict):
    """stage name -> seconds (a dict, so it prints and serialises as one)."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        """Add seconds to a stage (thread-safe: a batch's queries may run in parallel)."""
        with self._lock:
            self[stage] = self.get(stage, 0.0) + seconds

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage `name`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def ms(self) -> dict[str, float]:
        """The stages in milliseconds."""
        return {k: 1000 * v for k, v in self.items()}


@contextmanager
def maybe(timings: Timings | None, name: str) -> Iterator[None]:
    """timings.stage(name) when timings is given, else nothing."""
    if timings is None:
        yield
    else:
        with timings.stage(name):
            yield

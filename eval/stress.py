"""Stress collections generated in code (seeded), for defaults that must hold on unseen data.

- `attribute_collection` (LIMIT in spirit: Weller et al., "On the Theoretical Limitations of
  Embedding-Based Retrieval"): short documents that each list many distinct attributes of one
  person ("Ada Moreau likes red kites, jazz records, ..."), queries that ask for one attribute
  ("Who likes jazz records?"), every person who likes it relevant. Items share their words
  ("red kites", "red boats", "paper kites"), so a reduction that merges the vectors of two
  attributes of a document makes it match the wrong query.
- `long_query_collection`: a shared collection whose queries become paragraphs: the first
  sentences of a related document (BM25's best-ranked document that is *not* judged relevant:
  on topic, but no answer leaked), then the original query. This is the shape of a RAG query that
  carries context before the question, and it puts the question past the 32nd token, where the
  old query encoder cut.
- `title_query_collection` (lexically weak): a titled collection's titles become the queries for
  their own abstracts, and every abstract loses its title and every word of its title (and any
  word sharing a 5-letter stem with one), so the relevant document shares almost no word with its
  query: BM25 must match by accident, dense search by meaning.
- `title_document_collection` (short documents): a titled collection's documents cut to their
  titles (Cranfield: 12 words on median), same queries and qrels: a reduction that halves every
  document removes the vectors that tell these apart.
- `buried_collection` (long documents): every judged document hidden at a random depth inside a
  long document of unrelated text; `assembled_collection`: long documents assembled from related
  paragraphs (BM25 neighbours), the judged one among them. Ranking by the first window misses
  most answers; ranking by all vectors at once drowns them.

    python -m eval.stress --out /tmp/stress [--base ../shared/data/scifact]

writes them as BEIR folders (`attributes/`, `long-<base>/`, `titles-<titled>/`, `tq-<titled>/`,
`buried-<base>/`, `assembled-<base>/`) for `tessera eval --dataset`.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from retriever.corpus import Document, Query

from .datasets import Dataset, load_dataset

__all__ = ["attribute_collection", "long_query_collection", "title_query_collection", "title_document_collection",
           "buried_collection", "assembled_collection", "write_beir"]

_FIRST = ("Ada Bruno Chen Dara Emil Fatima Goran Hana Ivo Jonas Kiri Lena Mateo Nia Omar Priya Quinn Rosa Sven "
          "Tariq Uma Vera Wen Xavi Yusuf Zoe Amir Bea Carlos Dmitri").split()
_LAST = ("Moreau Okafor Lindqvist Tanaka Rossi Novak Haddad Silva Kowalski Nguyen Byrne Fischer Costa Ibrahim "
         "Jensen Patel Ortega Sato Keller Dubois Mensah Varga Larsen Petrov Alves Weber Kim Horvat Reyes Laine "
         "Brandt Oyelaran Castillo").split()
_MODIFIERS = ("red blue green yellow wooden paper silver golden tiny giant vintage electric wild spicy frozen "
              "striped velvet glass marble rusty smoked").split()                       # 20
_THINGS = ("kites boats trains violins drums tulips cacti parrots ferrets turtles lanterns candles puzzles "
           "novels poems maps clocks scarves boots hats teapots mugs pianos guitars sculptures mosaics quilts "
           "bicycles scooters canoes tents telescopes marbles stamps coins crystals fossils seashells orchids "
           "bonsai pretzels dumplings noodles pickles peppers mangoes figs olives chestnuts waffles").split()  # 50


def attribute_collection(n_people: int = 1000, n_items: int = 1000, likes: tuple[int, int] = (30, 50),
                         n_queries: int = 200, seed: int = 0) -> Dataset:
    """People who each like `likes` (inclusive range) of `n_items` items; one query per sampled item.

    Document ids "p0000".., query ids "q0000".. (item numbers); relevance 1 for each person who
    likes the item. Every queried item is liked by at least one person."""
    items = [f"{m} {t}" for t in _THINGS for m in _MODIFIERS]
    if n_items > len(items):
        raise ValueError(f"at most {len(items)} items")
    rng = np.random.default_rng(seed)
    items = [items[i] for i in np.sort(rng.permutation(len(items))[:n_items])]
    names = [f"{f} {last}" for last in _LAST for f in _FIRST]
    names = [names[i] for i in rng.permutation(len(names))[:n_people]]
    liked_by: dict[int, list[int]] = {}
    documents = []
    for p, name in enumerate(names):
        chosen = rng.permutation(n_items)[:int(rng.integers(likes[0], likes[1] + 1))]
        for i in chosen:
            liked_by.setdefault(int(i), []).append(p)
        listed = [items[i] for i in chosen]
        documents.append(Document(id=f"p{p:04d}", title="", text=f"{name} likes {', '.join(listed[:-1])} and {listed[-1]}."))
    asked = np.sort(rng.permutation(sorted(liked_by))[:n_queries])
    queries = [Query(id=f"q{i:04d}", text=f"Who likes {items[i]}?") for i in asked]
    qrels = {f"q{i:04d}": {f"p{p:04d}": 1 for p in liked_by[int(i)]} for i in asked}
    return Dataset("attributes", documents, queries, qrels)


def _first_sentences(text: str, max_words: int) -> str:
    """Whole sentences from the start of `text` up to about max_words words (at least one)."""
    out: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        if out and len(" ".join(out + [sentence]).split()) > max_words:
            break
        out.append(sentence)
    words = " ".join(out).split()
    return " ".join(words[:max_words * 2])


def long_query_collection(base: Dataset, context_words: int = 60) -> Dataset:
    """`base` with each query prefixed by the first sentences (about `context_words` words) of
    BM25's top-ranked document for it that is not judged relevant. Same documents and qrels."""
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([d.full_text for d in base.documents], stopwords="en", show_progress=False),
                    show_progress=False)
    tokens = bm25s.tokenize([q.text for q in base.queries], stopwords="en", show_progress=False)
    depth = min(50, len(base.documents))
    ranked, _ = retriever.retrieve(tokens, k=depth, show_progress=False)
    queries = []
    for q, row in zip(base.queries, ranked):
        judged = base.qrels.get(q.id, {})
        related = next((base.documents[j] for j in row if base.documents[j].id not in judged), base.documents[row[-1]])
        context = _first_sentences(related.text or related.title, context_words)
        queries.append(Query(id=q.id, text=f"{context} {q.text}"))
    return Dataset(f"long-{base.name}", base.documents, queries, base.qrels)


_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def _content_words(text: str) -> set[str]:
    from retriever.stopwords import ENGLISH_STOPWORDS

    return {w for w in _WORD.findall(text.lower()) if w not in ENGLISH_STOPWORDS and len(w) > 1}


def _without_words(text: str, banned: set[str], stems: bool = False) -> str:
    """`text` (lower-cased) with every word in `banned` removed (with `stems`, also every word
    sharing its first 5 letters with a banned word of at least 5 letters)."""
    stems = {w[:5] for w in banned if len(w) >= 5} if stems else set()

    def keep(match: re.Match) -> str:
        w = match.group(0)
        return "" if w in banned or (len(w) >= 5 and w[:5] in stems) else w

    return re.sub(r"\s+", " ", _WORD.sub(keep, text.lower())).strip()


def title_query_collection(base: Dataset, n_queries: int = 300, min_title_words: int = 5, seed: int = 0) -> Dataset:
    """Titles of `base` as queries for their own documents, which lose their title words.

    Every document's text drops its leading title (Cranfield repeats it) and every content word of
    its title (see `_without_words`); `n_queries` documents with titles of at least
    `min_title_words` words (seeded sample) give the queries, query id "t" + document id, each
    with that one document relevant."""
    documents, candidates = [], []
    for d in base.documents:
        text = d.text[len(d.title):] if d.title and d.text.startswith(d.title) else d.text
        stripped = _without_words(text, _content_words(d.title)).lstrip(" .")
        documents.append(Document(id=d.id, title="", text=stripped))
        if len(d.title.split()) >= min_title_words and len(stripped.split()) >= 10:
            candidates.append(d)
    if not candidates:
        raise ValueError(f"{base.name}: no document has a title of {min_title_words}+ words")
    rng = np.random.default_rng(seed)
    chosen = [candidates[i] for i in np.sort(rng.permutation(len(candidates))[:n_queries])]
    queries = [Query(id=f"t{d.id}", text=d.title.rstrip(" .")) for d in chosen]
    qrels = {f"t{d.id}": {d.id: 1} for d in chosen}
    return Dataset(f"tq-{base.name}", documents, queries, qrels)


def title_document_collection(base: Dataset) -> Dataset:
    """`base` with each document cut to its title (documents without one dropped, with their
    judgments); same queries, judged queries only."""
    documents = [Document(id=d.id, title="", text=d.title) for d in base.documents if d.title.strip()]
    kept = {d.id for d in documents}
    qrels = {q: {d: r for d, r in judged.items() if d in kept} for q, judged in base.qrels.items()}
    qrels = {q: judged for q, judged in qrels.items() if judged}
    queries = [q for q in base.queries if q.id in qrels]
    return Dataset(f"titles-{base.name}", documents, queries, qrels)


def _judged_and_pool(base: Dataset) -> tuple[list[Document], list[Document]]:
    judged = {d for docs in base.qrels.values() for d in docs}
    return ([d for d in base.documents if d.id in judged], [d for d in base.documents if d.id not in judged])


def _long_document(doc_id: str, paragraphs: list[str], inserted: str | None, rng) -> Document:
    """Paragraphs joined by blank lines, `inserted` (if any) at a random depth among them."""
    if inserted is not None:
        paragraphs = list(paragraphs)
        paragraphs.insert(int(rng.integers(0, len(paragraphs) + 1)), inserted)
    return Document(id=doc_id, title="", text="\n\n".join(paragraphs))


def buried_collection(base: Dataset, fill: tuple[int, int] = (3, 8), seed: int = 0) -> Dataset:
    """Every judged document of `base` buried at a random depth in a long document of unrelated
    text: between fill[0] and fill[1] documents nobody judged (its title kept inside, no title
    outside), plus as many long documents of unjudged text alone. Same queries and qrels: the
    answer is anywhere, usually past the first window."""
    judged, pool = _judged_and_pool(base)
    rng = np.random.default_rng(seed)

    def filler() -> list[str]:
        return [pool[i].full_text for i in rng.choice(len(pool), int(rng.integers(fill[0], fill[1] + 1)),
                                                       replace=False)]

    documents = [_long_document(d.id, filler(), d.full_text, rng) for d in judged]
    documents += [_long_document(f"filler-{i}", filler(), None, rng) for i in range(len(judged))]
    return Dataset(f"buried-{base.name}", documents, base.queries, base.qrels)


def assembled_collection(base: Dataset, fill: tuple[int, int] = (3, 8), neighbours: int = 20,
                         seed: int = 0) -> Dataset:
    """Long documents assembled from related paragraphs: every judged document of `base` among
    documents on the same subject (drawn from its `neighbours` nearest unjudged documents by
    BM25), plus as many long documents assembled around an unjudged document alike. The filler
    is on topic, so a document must be told from its neighbours by the passage that answers."""
    import bm25s

    judged, pool = _judged_and_pool(base)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([d.full_text for d in pool], stopwords="en", show_progress=False),
                    show_progress=False)
    rng = np.random.default_rng(seed)
    seeds = judged + [pool[i] for i in rng.choice(len(pool), min(len(judged), len(pool)), replace=False)]
    ranked, _ = retriever.retrieve(bm25s.tokenize([d.full_text for d in seeds], stopwords="en", show_progress=False),
                                   k=min(neighbours + 1, len(pool)), show_progress=False)
    documents = []
    for n, (d, row) in enumerate(zip(seeds, ranked)):
        near = [pool[j] for j in row if pool[j].id != d.id]
        chosen = rng.choice(len(near), min(len(near), int(rng.integers(fill[0], fill[1] + 1))), replace=False)
        paragraphs = [near[j].full_text for j in chosen]
        is_judged = n < len(judged)
        documents.append(_long_document(d.id if is_judged else f"topic-{n}", paragraphs, d.full_text, rng))
    return Dataset(f"assembled-{base.name}", documents, base.queries, base.qrels)


def write_beir(data: Dataset, folder: str | Path) -> Path:
    """Write a Dataset as a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)."""
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for d in data.documents:
            f.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text}, ensure_ascii=False) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in data.queries:
            f.write(json.dumps({"_id": q.id, "text": q.text}, ensure_ascii=False) + "\n")
    with open(folder / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, judged in data.qrels.items():
            for doc_id, rel in judged.items():
                f.write(f"{qid}\t{doc_id}\t{rel}\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.stress", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder to write attributes/ and long-<base>/ into")
    p.add_argument("--base", default="../shared/data/scifact", help="collection whose queries get long")
    p.add_argument("--titled", default="../shared/data/cranfield", help="collection with titles (tq-, titles-)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = Path(args.out)
    print(write_beir(attribute_collection(seed=args.seed), out / "attributes"))
    base = load_dataset(args.base)
    print(write_beir(long_query_collection(base), out / f"long-{base.name}"))
    titled = load_dataset(args.titled)
    print(write_beir(title_query_collection(titled, seed=args.seed), out / f"tq-{titled.name}"))
    print(write_beir(title_document_collection(titled), out / f"titles-{titled.name}"))
    print(write_beir(buried_collection(base, seed=args.seed), out / f"buried-{base.name}"))
    print(write_beir(assembled_collection(base, seed=args.seed), out / f"assembled-{base.name}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

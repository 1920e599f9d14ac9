"""Read documents and queries from BEIR folders, JSONL files and TSV files.

Accepted inputs:
- a BEIR folder (holding `corpus.jsonl`, and `queries.jsonl` for queries);
- JSONL: one object per line with an id (`_id` or `id`) and `text`; optional `title`, `metadata`;
- TSV: `id<TAB>text` or `id<TAB>text<TAB>title` per line (MS MARCO's collection.tsv shape);
  a first line `id/_id ... text` is taken as a header.

A malformed line raises `CorpusFormatError` naming file, line and field. Pass
`on_error="skip"` to skip such lines instead (they are counted and reported with a warning).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

from indexes.values import check_stored_value

# Characters of one title or text at most: a guard against a runaway field, not a window. Every
# token of a document is encoded (as passages, retriever/passages.py), so what bounds a document is
# memory: encoding keeps ~770 bytes per token (float16 vectors), about 200 bytes per character of
# English with the passages' overlap, so a document at this limit needs ~2 GB while it encodes.
# The CLI (--max-text-chars), the library (max_text_chars=) and the server share it; over HTTP the
# 8 MiB request body bounds a document first.
MAX_TEXT_CHARS = 10_000_000

__all__ = ["CorpusFormatError", "Document", "Query", "read_corpus", "read_queries"]


class CorpusFormatError(ValueError):
    """A corpus or query file line that cannot be read; the message names file, line and field."""

    def __init__(self, path: Path, line: int, problem: str):
        super().__init__(f"{path}:{line}: {problem}")
        self.path, self.line, self.problem = path, line, problem


@dataclass
class Document:
    id: str
    text: str
    title: str = ""
    metadata: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "text": self.text, "metadata": self.metadata}

    @property
    def full_text(self) -> str:
        """What the encoder reads: title and text, as BEIR evaluations do."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass
class Query:
    id: str
    text: str


def _string_field(obj: dict, names: tuple[str, ...], path: Path, line: int, required: bool = True) -> str:
    for name in names:
        if name in obj:
            value = obj[name]
            if isinstance(value, (int, float)) and not isinstance(value, bool) and name in ("_id", "id"):
                return str(value)
            if not isinstance(value, str):
                raise CorpusFormatError(path, line, f"field '{name}' must be a string, got {type(value).__name__}")
            return value
    if required:
        raise CorpusFormatError(path, line, f"missing field '{names[0]}'")
    return ""


def _lines(path: Path) -> Iterator[tuple[int, str | CorpusFormatError]]:
    """(line number, text) of each line; a line that is not UTF-8 becomes an error naming it."""
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                yield line_no, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield line_no, CorpusFormatError(path, line_no, f"not UTF-8 text (byte 0x{raw[e.start]:02x} at "
                                                               f"byte {e.start + 1} of the line; binary file?)")


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict | CorpusFormatError]]:
    for line_no, line in _lines(path):
        if isinstance(line, CorpusFormatError):
            yield line_no, line
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield line_no, CorpusFormatError(path, line_no, f"invalid JSON ({e.msg} at column {e.colno})")
            continue
        except ValueError as e:         # e.g. an integer of more digits than Python converts
            yield line_no, CorpusFormatError(path, line_no, f"invalid JSON value ({e})")
            continue
        if not isinstance(obj, dict):
            obj = CorpusFormatError(path, line_no, "expected a JSON object")
        else:
            try:
                json.dumps(obj, allow_nan=False, ensure_ascii=False).encode("utf-8")
                check_stored_value(obj.get("metadata"), "field 'metadata'")
            except (UnicodeEncodeError, ValueError) as e:
                why = ("holds a lone surrogate (\\ud800-\\udfff escape), which cannot be stored"
                       if isinstance(e, UnicodeEncodeError) else
                       "holds NaN or infinity, which cannot be stored" if "Out of range float" in str(e) else str(e))
                obj = CorpusFormatError(path, line_no, why)
        yield line_no, obj


def _tsv_records(path: Path) -> Iterator[tuple[int, dict | CorpusFormatError]]:
    for line_no, line in _lines(path):
        if isinstance(line, CorpusFormatError):
            yield line_no, line
            continue
        line = line.rstrip("\n").rstrip("\r")
        if not line.strip():
            continue
        cells = line.split("\t")
        if line_no == 1 and cells[0].lower() in ("id", "_id", "docid", "pid", "qid") and \
                any(c.lower() == "text" for c in cells[1:]):
            continue  # header row
        if len(cells) < 2:
            yield line_no, CorpusFormatError(path, line_no, "field 'text' missing (expected id<TAB>text[<TAB>title])")
        elif len(cells) > 3:
            yield line_no, CorpusFormatError(path, line_no, f"{len(cells)} tab-separated fields, expected 2 or 3")
        else:
            yield line_no, {"_id": cells[0], "text": cells[1], "title": cells[2] if len(cells) == 3 else ""}


def _records(path: Path) -> Iterator[tuple[int, dict | CorpusFormatError]]:
    if path.suffix in (".tsv", ".txt"):
        return _tsv_records(path)
    if path.suffix in (".jsonl", ".json"):
        return _jsonl_records(path)
    raise ValueError(f"{path}: unknown corpus format (expected .jsonl or .tsv)")


def _resolve(path: str | Path, beir_name: str) -> Path:
    path = Path(path)
    if path.is_dir():
        if not (path / beir_name).is_file():
            raise FileNotFoundError(f"{path}: folder has no {beir_name}")
        return path / beir_name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return path


def _read(path: Path, parse, on_error: str) -> list:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    items, seen, skipped = [], set(), 0
    for line_no, obj in _records(path):
        try:
            if isinstance(obj, CorpusFormatError):
                raise obj
            item = parse(obj, path, line_no)
            if not item.id:
                raise CorpusFormatError(path, line_no, "field '_id' is empty")
            if item.id in seen:
                raise CorpusFormatError(path, line_no, f"duplicate id {item.id!r}")
        except CorpusFormatError:
            if on_error == "raise":
                raise
            skipped += 1
            continue
        seen.add(item.id)
        items.append(item)
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} malformed line(s)", stacklevel=3)
    return items


def _parse_document(obj: dict, path: Path, line: int) -> Document:
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise CorpusFormatError(path, line, "field 'metadata' must be an object")
    return Document(id=_string_field(obj, ("_id", "id"), path, line),
                    text=_string_field(obj, ("text",), path, line),
                    title=_string_field(obj, ("title",), path, line, required=False) or "",
                    metadata=metadata)


def _parse_query(obj: dict, path: Path, line: int) -> Query:
    return Query(id=_string_field(obj, ("_id", "id"), path, line), text=_string_field(obj, ("text",), path, line))


def read_corpus(path: str | Path, on_error: Literal["raise", "skip"] = "raise",
                max_text_chars: int = MAX_TEXT_CHARS) -> list[Document]:
    """Documents from a BEIR folder, a .jsonl file or a .tsv file, in file order; a title or text
    longer than max_text_chars characters is a malformed line (the server's limit too)."""
    if max_text_chars < 1:
        raise ValueError(f"max_text_chars must be at least 1, got {max_text_chars}")

    def parse(obj: dict, path: Path, line: int) -> Document:
        document = _parse_document(obj, path, line)
        problem = text_too_long(document, max_text_chars)
        if problem:
            raise CorpusFormatError(path, line, problem)
        return document

    return _read(_resolve(path, "corpus.jsonl"), parse, on_error)


def text_too_long(document: Document, max_text_chars: int = MAX_TEXT_CHARS) -> str | None:
    """The problem, when the document's title or text is over max_text_chars characters."""
    for name in ("text", "title"):
        n = len(getattr(document, name) or "")
        if n > max_text_chars:
            return (f"field {name!r}: {n:,} characters, over the limit of {max_text_chars:,} "
                    "(raise it with --max-text-chars / max_text_chars=, or split the document)")
    return None


def read_queries(path: str | Path, on_error: Literal["raise", "skip"] = "raise") -> list[Query]:
    """Queries from a BEIR folder (queries.jsonl), a .jsonl file or a .tsv file (id<TAB>text)."""
    return _read(_resolve(path, "queries.jsonl"), _parse_query, on_error)

"""The FastAPI application: search, batch search, document updates, index info, health, stats.

Writes need the API key (header `X-API-Key` or `Authorization: Bearer KEY`); with no key
configured, writes are refused. `protect_reads=True` asks for the key on every endpoint but
/health. Index names are only those configured at start; document ids are looked up, never used
as paths, so no request can reach outside the served directories.
"""

from __future__ import annotations

import hmac
import time
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from retriever import IndexBusyError
from retriever.corpus import Document

from . import schemas as m
from .batcher import Job, MicroBatcher
from .metrics import CONTENT_TYPE_LATEST, ServerMetrics
from .state import IndexDamagedError, IndexHandle, LatencyLog
from indexes.files import IndexFormatError, NoSpaceError

ERRORS = {400: {"model": m.Error}, 401: {"model": m.Error}, 404: {"model": m.Error}, 409: {"model": m.Error},
          413: {"model": m.Error}, 422: {"model": m.Error}, 503: {"model": m.Error}, 507: {"model": m.Error}}
RETRY_AFTER_SECONDS = 1     # a write refused because another process holds the writer lock


class Served:
    """What every route reads: the served indexes, the write key, latency log, metrics, batcher."""

    def __init__(self, handles: dict[str, IndexHandle], api_key: str | None, protect_reads: bool,
                 window_ms: float, max_batch: int):
        self.handles, self.api_key, self.protect_reads = handles, api_key, protect_reads
        self.log = LatencyLog()
        self.metrics = ServerMetrics()
        self.batcher = MicroBatcher(window_ms=window_ms, max_batch=max_batch, log=self.log,
                                    on_batch=self.metrics.batch_size.observe)

    def check_key(self, request: Request) -> None:
        if self.api_key is None:
            raise HTTPException(401, "writes are disabled: start the server with an API key "
                                     "(TESSERA_API_KEY or --api-key-file)")
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            given = given or auth[7:]
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise HTTPException(401, "missing or wrong API key")

    def check_read_key(self, request: Request) -> None:
        if self.protect_reads:
            self.check_key(request)

    def handle_for(self, name: str | None) -> IndexHandle:
        if name is None:
            if len(self.handles) == 1:
                return next(iter(self.handles.values()))
            raise HTTPException(422, f"several indexes are served; name one of {sorted(self.handles)} in 'index'")
        if name not in self.handles:
            raise HTTPException(404, f"no index named {name!r}; served: {sorted(self.handles)}")
        return self.handles[name]

    async def search(self, handle: IndexHandle, queries: list[str], body) -> list:
        job = Job(handle, queries, body.k, body.engine, body.quality,
                  None if body.filter is None else dict(body.filter), body.hybrid, body.unit)
        handle.check_intact()
        try:
            return await self.batcher.search(job)
        except ValueError as e:
            raise HTTPException(400, str(e)) from e

    def info(self, handle: IndexHandle) -> m.IndexInfo:
        stats = handle.snapshot.stats
        return m.IndexInfo(name=handle.name, documents=stats["documents"], recipe=stats["recipe"],
                           stored_vectors=stats["stored_vectors"], bytes=stats["bytes"], encoder=stats["encoder"],
                           generation=stats["generation"], shards=stats["shards"])


def hits(result, return_documents: bool) -> list[m.Hit]:
    """One query's (scores, positions, ids, snapshot, passages) as response hits, with documents if asked."""
    scores, positions, doc_ids, snapshot, passages = result
    out = []
    for rank, (score, position, doc_id, passage) in enumerate(zip(scores.tolist(), positions.tolist(), doc_ids,
                                                                  passages), start=1):
        hit = m.Hit(rank=rank, id=doc_id, score=round(float(score), 5),
                    passage=m.PassageOut(start=passage.start, end=passage.end,
                                         text=passage.text if return_documents else None))
        if return_documents:
            doc = snapshot.index.document(int(position))
            hit.title, hit.text, hit.metadata = doc.get("title", ""), doc.get("text", ""), doc.get("metadata") or {}
        out.append(hit)
    return out


def create_app(handles: dict[str, IndexHandle], *, api_key: str | None = None, protect_reads: bool = False,
               window_ms: float = 2.0, max_batch: int = 32, scrub_every: float | None = None) -> FastAPI:
    served = Served(handles, api_key, protect_reads, window_ms, max_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await served.batcher.start()
        if scrub_every:
            for handle in handles.values():
                handle.start_scrub(scrub_every)
        yield
        for handle in handles.values():
            handle.stop_scrub()
        # Graceful stop: uvicorn has finished in-flight requests (each write commits before it
        # answers); let a background compaction commit or give up before the process ends.
        await served.batcher.stop()
        for handle in handles.values():
            await run_in_threadpool(handle.wait_for_compaction)

    app = FastAPI(title="Tessera", version="0.1", lifespan=lifespan,
                  description="Multi-vector (late-interaction) search over Tessera indexes.")
    _guard_routes(app, served)
    _search_routes(app, served)
    _document_routes(app, served)
    _info_routes(app, served)
    return app


def _guard_routes(app: FastAPI, served: Served) -> None:
    """Body size limits and error bodies."""
    app.middleware("http")(served.metrics.middleware)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > m.MAX_BODY_BYTES):
            return JSONResponse({"detail": f"request body over {m.MAX_BODY_BYTES} bytes"}, status_code=413)
        if length is None and request.method in ("POST", "PUT", "PATCH") and \
                request.headers.get("transfer-encoding", "").lower() == "chunked":
            return JSONResponse({"detail": "send a Content-Length; chunked bodies are not accepted"}, status_code=411)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(IndexDamagedError)
    async def damaged(request: Request, exc: IndexDamagedError):
        return JSONResponse({"detail": str(exc)}, status_code=503)


def _search_routes(app: FastAPI, served: Served) -> None:
    reads = [Depends(served.check_read_key)]

    @app.post("/search", response_model=m.SearchResponse, responses=ERRORS, dependencies=reads)
    async def search(body: m.SearchRequest) -> m.SearchResponse:
        started = time.perf_counter()
        handle = served.handle_for(body.index)
        (result,) = await served.search(handle, [body.query], body)
        took = 1000 * (time.perf_counter() - started)
        served.log.add(took)
        return m.SearchResponse(query=body.query, index=handle.name, hits=hits(result, body.return_documents),
                                took_ms=round(took, 3))

    @app.post("/search/batch", response_model=m.BatchSearchResponse, responses=ERRORS, dependencies=reads)
    async def search_batch(body: m.BatchSearchRequest) -> m.BatchSearchResponse:
        started = time.perf_counter()
        handle = served.handle_for(body.index)
        results = await served.search(handle, body.queries, body)
        took = 1000 * (time.perf_counter() - started)
        served.log.add(took)
        return m.BatchSearchResponse(index=handle.name, took_ms=round(took, 3), results=[
            m.SearchResponse(query=q, index=handle.name, hits=hits(r, body.return_documents), took_ms=round(took, 3))
            for q, r in zip(body.queries, results)])


async def _write(handle: IndexHandle, change):
    """Run a write in a thread, its failures as HTTP answers (409/404 are the caller's KeyError)."""
    try:
        return await run_in_threadpool(change)
    except IndexBusyError as e:
        raise HTTPException(503, str(e), headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from e
    except IndexFormatError:                  # a damaged file: the handle is marked, say so
        handle.check_intact()
        raise
    except NoSpaceError as e:
        raise HTTPException(507, str(e)) from e


def _document_routes(app: FastAPI, served: Served) -> None:
    writes, reads = [Depends(served.check_key)], [Depends(served.check_read_key)]

    @app.post("/indexes/{name}/documents", response_model=m.AddDocumentsResponse, responses=ERRORS,
              dependencies=writes)
    async def add_documents(name: str, body: m.AddDocumentsRequest) -> m.AddDocumentsResponse:
        handle = served.handle_for(name)
        ids = [d.id for d in body.documents]
        if len(set(ids)) != len(ids):
            raise HTTPException(422, "document ids must be unique within one request")
        documents = [Document(id=d.id, text=d.text, title=d.title, metadata=d.metadata) for d in body.documents]
        try:
            added = await _write(handle, partial(handle.add, documents, body.upsert))
        except KeyError as e:
            raise HTTPException(409, str(e.args[0])) from e
        except ValueError as e:
            raise HTTPException(400, str(e)) from e
        return m.AddDocumentsResponse(index=name, added=added, documents=len(handle.snapshot.index))

    @app.delete("/indexes/{name}/documents/{doc_id:path}", response_model=m.DeleteResponse, responses=ERRORS,
                dependencies=writes)
    async def delete_document(name: str, doc_id: str) -> m.DeleteResponse:
        handle = served.handle_for(name)
        try:
            await _write(handle, partial(handle.delete, doc_id))
        except KeyError as e:
            raise HTTPException(404, f"no document {doc_id!r} in index {name!r}") from e
        return m.DeleteResponse(index=name, deleted=doc_id, documents=len(handle.snapshot.index))

    @app.get("/indexes/{name}/documents/{doc_id:path}", response_model=m.DocumentOut, responses=ERRORS,
             dependencies=reads)
    async def get_document(name: str, doc_id: str) -> m.DocumentOut:
        doc = served.handle_for(name).document(doc_id)
        if doc is None:
            raise HTTPException(404, f"no document {doc_id!r} in index {name!r}")
        return m.DocumentOut(id=doc["id"], title=doc.get("title", ""), text=doc.get("text", ""),
                             metadata=doc.get("metadata") or {})


def _info_routes(app: FastAPI, served: Served) -> None:
    reads = [Depends(served.check_read_key)]
    handles = served.handles

    @app.get("/indexes", response_model=list[m.IndexInfo], dependencies=reads)
    async def list_indexes() -> list[m.IndexInfo]:
        return [served.info(h) for h in handles.values()]

    page = (Path(__file__).parent / "static" / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def search_page() -> HTMLResponse:
        """The search page: static HTML + JS calling /indexes and /search (no build step, no CDN)."""
        return HTMLResponse(page)

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=reads)
    async def prometheus_metrics() -> PlainTextResponse:
        body = await run_in_threadpool(served.metrics.render, handles)
        return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", response_model=m.Health, responses={503: {"model": m.Health}})
    async def health():
        damaged = {name: h.damaged for name, h in handles.items() if h.damaged is not None}
        body = m.Health(status="damaged" if damaged else "ok", indexes=len(handles), damaged=damaged)
        return JSONResponse(body.model_dump(), status_code=503) if damaged else body

    @app.get("/stats", response_model=m.Stats, dependencies=reads)
    async def stats() -> m.Stats:
        log = served.log
        return m.Stats(indexes=[served.info(h) for h in handles.values()],
                       search_latency=m.LatencyStats(**log.percentiles()), batches=log.batches,
                       mean_batch_size=log.batched_queries / log.batches if log.batches else None)

"""The HTTP client classes (see the package docstring)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Sequence

import httpx

from server import schemas as m

__all__ = ["TesseraClient", "AsyncTesseraClient", "TesseraError"]

RETRY_STATUS = (429, 503)


class TesseraError(RuntimeError):
    """A request the server answered with an error: `status` and the server's `detail`."""

    def __init__(self, status: int, detail: str, method: str, path: str):
        super().__init__(f"{method} {path}: HTTP {status}: {detail}")
        self.status, self.detail = status, detail


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text


def _delay(response: httpx.Response, attempt: int, backoff: float) -> float:
    after = response.headers.get("retry-after", "")
    return float(after) if after.replace(".", "", 1).isdigit() else backoff * 2 ** attempt


def _search_body(query, k, index, filter, hybrid, engine, quality, return_documents) -> dict:
    body = {"k": k, "hybrid": hybrid, "engine": engine, "quality": quality, "return_documents": return_documents}
    if isinstance(query, str):
        body["query"] = query
    else:
        body["queries"] = list(query)
    if index is not None:
        body["index"] = index
    if filter is not None:
        body["filter"] = filter
    return body


class _Base:
    def __init__(self, url: str, api_key: str | None, timeout: float, retries: int, backoff: float):
        self.url, self.retries, self.backoff = url.rstrip("/"), retries, backoff
        self.headers = {"X-API-Key": api_key} if api_key else {}
        self.timeout = timeout

    def _check(self, response: httpx.Response, method: str, path: str) -> dict | list:
        if response.status_code >= 400:
            raise TesseraError(response.status_code, _detail(response), method, path)
        return response.json()


class TesseraClient(_Base):
    """Blocking client. url: the server's base URL; api_key: for writes (and reads if protected)."""

    def __init__(self, url: str = "http://127.0.0.1:8000", *, api_key: str | None = None, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.2):
        super().__init__(url, api_key, timeout, retries, backoff)
        self._http = httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)

    def __enter__(self) -> "TesseraClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs) -> Any:
        for attempt in range(self.retries + 1):
            response = self._http.request(method, path, **kwargs)
            if response.status_code not in RETRY_STATUS or attempt == self.retries:
                return self._check(response, method, path)
            time.sleep(_delay(response, attempt, self.backoff))

    def search(self, query: str, k: int = 10, *, index: str | None = None, filter: dict | None = None,
               hybrid: bool = True, engine: str = "token", quality: str = "balanced",
               return_documents: bool = True) -> m.SearchResponse:
        body = _search_body(query, k, index, filter, hybrid, engine, quality, return_documents)
        return m.SearchResponse.model_validate(self._request("POST", "/search", json=body))

    def search_batch(self, queries: Sequence[str], k: int = 10, **kwargs) -> m.BatchSearchResponse:
        body = _search_body(list(queries), k, kwargs.pop("index", None), kwargs.pop("filter", None),
                            kwargs.pop("hybrid", True), kwargs.pop("engine", "token"),
                            kwargs.pop("quality", "balanced"), kwargs.pop("return_documents", True))
        if kwargs:
            raise TypeError(f"unknown arguments {sorted(kwargs)}")
        return m.BatchSearchResponse.model_validate(self._request("POST", "/search/batch", json=body))

    def add(self, documents: Sequence[dict], *, index: str, upsert: bool = False) -> m.AddDocumentsResponse:
        body = {"documents": [m.DocumentIn(**d).model_dump() for d in documents], "upsert": upsert}
        return m.AddDocumentsResponse.model_validate(self._request("POST", f"/indexes/{index}/documents", json=body))

    def delete(self, doc_id: str, *, index: str) -> m.DeleteResponse:
        return m.DeleteResponse.model_validate(self._request("DELETE", f"/indexes/{index}/documents/{doc_id}"))

    def document(self, doc_id: str, *, index: str) -> m.DocumentOut:
        return m.DocumentOut.model_validate(self._request("GET", f"/indexes/{index}/documents/{doc_id}"))

    def indexes(self) -> list[m.IndexInfo]:
        return [m.IndexInfo.model_validate(x) for x in self._request("GET", "/indexes")]

    def health(self) -> m.Health:
        return m.Health.model_validate(self._request("GET", "/health"))


class AsyncTesseraClient(_Base):
    """The same methods as TesseraClient, as coroutines (for asyncio apps)."""

    def __init__(self, url: str = "http://127.0.0.1:8000", *, api_key: str | None = None, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.2):
        super().__init__(url, api_key, timeout, retries, backoff)
        self._http = httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=timeout)

    async def __aenter__(self) -> "AsyncTesseraClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs) -> Any:
        for attempt in range(self.retries + 1):
            response = await self._http.request(method, path, **kwargs)
            if response.status_code not in RETRY_STATUS or attempt == self.retries:
                return self._check(response, method, path)
            await asyncio.sleep(_delay(response, attempt, self.backoff))

    async def search(self, query: str, k: int = 10, *, index: str | None = None, filter: dict | None = None,
                     hybrid: bool = True, engine: str = "token", quality: str = "balanced",
                     return_documents: bool = True) -> m.SearchResponse:
        body = _search_body(query, k, index, filter, hybrid, engine, quality, return_documents)
        return m.SearchResponse.model_validate(await self._request("POST", "/search", json=body))

    async def search_batch(self, queries: Sequence[str], k: int = 10, *, index: str | None = None,
                           filter: dict | None = None, hybrid: bool = True) -> m.BatchSearchResponse:
        body = _search_body(list(queries), k, index, filter, hybrid, "token", "balanced", True)
        return m.BatchSearchResponse.model_validate(await self._request("POST", "/search/batch", json=body))

    async def add(self, documents: Sequence[dict], *, index: str, upsert: bool = False) -> m.AddDocumentsResponse:
        body = {"documents": [m.DocumentIn(**d).model_dump() for d in documents], "upsert": upsert}
        return m.AddDocumentsResponse.model_validate(
            await self._request("POST", f"/indexes/{index}/documents", json=body))

    async def delete(self, doc_id: str, *, index: str) -> m.DeleteResponse:
        return m.DeleteResponse.model_validate(await self._request("DELETE", f"/indexes/{index}/documents/{doc_id}"))

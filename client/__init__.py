"""Python client for `tessera serve`: sync and async, typed results (the server's own schemas).

    from client import TesseraClient
    with TesseraClient("http://127.0.0.1:8000", api_key="...") as tessera:
        hits = tessera.search("how do solar panels work", k=5, filter={"lang": "en"}).hits
        tessera.add([{"id": "d1", "text": "..."}], index="docs", upsert=True)
        tessera.delete("d1", index="docs")

Requests that the server refuses raise TesseraError carrying the status and the server's
message; 429 and 503 (busy writer, overload) are retried with exponential backoff, honouring
Retry-After, up to `retries` times; nothing else is retried.
"""

from .http import AsyncTesseraClient, TesseraClient, TesseraError

__all__ = ["TesseraClient", "AsyncTesseraClient", "TesseraError"]

"""Prometheus metrics and structured access logs for the server.

`/metrics` serves, in Prometheus text format (prometheus_client, one registry per app, so no
process-wide state): requests by route, method and status; request latency histograms by route;
search micro-batch sizes; documents and bytes per served index. Every request is logged as one
JSON line on the `tessera.access` logger with its request id (the client's X-Request-ID, else a
new one), echoed back in the X-Request-ID response header.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ServerMetrics", "CONTENT_TYPE_LATEST"]

access_log = logging.getLogger("tessera.access")


class ServerMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("tessera_requests", "HTTP requests", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("tessera_request_seconds", "HTTP request latency", ["route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.batch_size = Histogram("tessera_search_batch_size", "queries per search micro-batch",
                                    registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64))
        self.documents = Gauge("tessera_index_documents", "live documents", ["index"], registry=self.registry)
        self.bytes = Gauge("tessera_index_bytes", "bytes on disk", ["index"], registry=self.registry)
        self.damaged = Gauge("tessera_index_damaged", "1 once a checksum of the index failed (not served)", ["index"],
                             registry=self.registry)

    async def middleware(self, request, call_next):
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["X-Request-ID"] = request_id
            return response
        finally:
            seconds = time.perf_counter() - started
            route = getattr(request.scope.get("route"), "path", "unmatched")
            self.requests.labels(route, request.method, str(status)).inc()
            self.latency.labels(route).observe(seconds)
            access_log.info(json.dumps({"request_id": request_id, "method": request.method, "path": request.url.path,
                                        "route": route, "status": status, "ms": round(1000 * seconds, 3),
                                        "client": request.client.host if request.client else None}))

    def render(self, handles: dict) -> bytes:
        for name, handle in handles.items():
            stats = handle.snapshot.stats
            self.documents.labels(name).set(stats["documents"])
            self.bytes.labels(name).set(stats["bytes"])
            self.damaged.labels(name).set(int(handle.damaged is not None))
        return generate_latest(self.registry)

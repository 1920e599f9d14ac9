"""HTTP search API for RAG applications: `tessera serve` (FastAPI under uvicorn)."""

from .app import create_app

__all__ = ["create_app"]

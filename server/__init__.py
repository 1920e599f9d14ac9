"""HTTP search API for RAG applications: `tessera serve` (FastAPI under uvicorn; server.app.create_app).

Importing the package imports nothing else, so the client can take its schemas (server.schemas)
without FastAPI, torch or the engine."""

"""`tessera serve`: run the search API under uvicorn.

    tessera serve --index DIR [--index NAME=DIR ...] [--host 127.0.0.1] [--port 8000]

The write key comes from TESSERA_API_KEY or --api-key-file (first line); without one, write
endpoints answer 401. OpenAPI docs are at /docs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--index", action="append", required=True, metavar="[NAME=]DIR",
                   help="an index to serve, named NAME (default: the directory's name); repeat for several")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key-file", default=None, help="file whose first line is the write key")
    p.add_argument("--protect-reads", action="store_true", help="require the key for searches and reads too")
    p.add_argument("--batch-window-ms", type=float, default=2.0,
                   help="how long the first request of a batch waits for others (default 2)")
    p.add_argument("--max-batch", type=int, default=32, help="queries per micro-batch (1: no batching)")
    p.add_argument("--access-log", action="store_true",
                   help="print one JSON line per request (request id, route, status, ms) on stderr")
    p.add_argument("--max-segments", type=int, default=8,
                   help="merge an index's segments after an add leaves more than this many (default 8)")
    p.add_argument("--verify", choices=["full", "background"], default="full",
                   help="check every checksum before serving (default), or serve at once and check them in "
                        "the background (an index found damaged is then no longer served)")
    p.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                   help="search sharded indexes with each shard a Ray actor on the cluster at ADDRESS "
                        "(default: the cluster this machine belongs to); every node must see the shard folders")
    p.add_argument("--scrub-every", type=float, default=6 * 3600, metavar="SECONDS",
                   help="re-verify every file's checksum this often in the background (default 6 hours; 0: never); "
                        "an index found damaged is no longer served")
    return p


def parse_indexes(specs: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for spec in specs:
        name, _, directory = spec.rpartition("=") if "=" in spec else ("", "", spec)
        path = Path(directory)
        name = name or path.resolve().name
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"index name {name!r}: use letters, digits, '-' and '_'")
        if name in out:
            raise ValueError(f"index name {name!r} given twice")
        if not (path / "manifest.json").is_file() and not (path / "shards.json").is_file():
            raise FileNotFoundError(f"{path}: no Tessera index here (neither manifest.json nor shards.json)")
        out[name] = path
    return out


def main(command: str = "serve", argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        import uvicorn
        from .app import create_app
        from .state import IndexHandle
    except ImportError as e:
        print(f"tessera serve: error: {e}; install the server extra: pip install 'tessera[server]'", file=sys.stderr)
        return 1
    try:
        specs = parse_indexes(args.index)
        key = os.environ.get("TESSERA_API_KEY")
        if args.api_key_file:
            key = Path(args.api_key_file).read_text().splitlines()[0].strip()
        if key is not None and len(key) < 8:
            raise ValueError("the API key must have at least 8 characters")
        verify = True if args.verify == "full" else "background"
        ray = {} if args.ray is None else {"executor": "ray", "ray_address": args.ray}
        handles = {name: IndexHandle(name, path, max_segments=args.max_segments, verify=verify, **ray)
                   for name, path in specs.items()}
    except (ValueError, FileNotFoundError, IndexError) as e:
        print(f"tessera serve: error: {e}", file=sys.stderr)
        return 1
    app = create_app(handles, api_key=key, protect_reads=args.protect_reads,
                     window_ms=args.batch_window_ms, max_batch=args.max_batch, scrub_every=args.scrub_every or None)
    if args.access_log:
        import logging
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access = logging.getLogger("tessera.access")
        access.addHandler(handler)
        access.setLevel(logging.INFO)
    # One process serves: it is the index's one writer, and its readers share the snapshots in memory.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

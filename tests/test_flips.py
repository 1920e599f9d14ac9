"""Every file of a 3-segment index with deletions, bytes flipped one at a time, opened *without*
checksums: a clean IndexFormatError naming the file, or results (dense, exhaustive, BM25, filter,
ids), never a crash or another exception (tests/flip_trials.py; the full walk of every byte is
`python tests/flip_trials.py --out report.json`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Files whose every byte shapes the index: a changed byte must be caught, never searched.
STRUCTURE = ("codes.npy", "member_counts.npy", "ivf_offsets.npy", "ivf_vector_ids.npy",
             "vocab_offsets.npy", "lex_offsets.npy", "lex_docs.npy", "id_order.npy", "documents.jsonl", "tomb")


def test_flipped_bytes_never_crash_an_unverified_open(tmp_path):
    progress = tmp_path / "progress"
    done = subprocess.run([sys.executable, str(HERE / "flip_trials.py"), "--out", str(tmp_path / "flips.json"),
                           "--per-file", "6", "--progress", str(progress)], capture_output=True, text=True, timeout=600)
    where = progress.read_text() if progress.is_file() else "?"
    assert done.returncode == 0, f"died on {where} (rc {done.returncode}): {done.stderr[-2000:]}"
    report = json.loads((tmp_path / "flips.json").read_text())
    assert len(report) >= 20                                    # codec, 3 segments' files, tombstones
    for name, counts in report.items():
        assert set(counts) <= {"error", "same", "different", "cut error"}, (name, counts)
        assert counts.get("cut error", 0) >= 2                   # each file cut by a byte and to half: caught
        if name.split("/")[-1] in STRUCTURE:
            assert "different" not in counts, (name, counts)
    assert sum(c.get("error", 0) for c in report.values()) > 0

"""Evaluation: qrels, standard IR metrics (pytrec_eval) and evaluation runs."""

from .metrics import DEFAULT_METRICS, evaluate, write_trec_run
from .qrels import QrelsFormatError, read_qrels

__all__ = ["DEFAULT_METRICS", "evaluate", "write_trec_run", "QrelsFormatError", "read_qrels"]

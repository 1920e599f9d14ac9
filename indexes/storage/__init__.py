"""The on-disk index: segments, document tables, lexical and vocabulary lists, manifests, atomic writes, verification."""

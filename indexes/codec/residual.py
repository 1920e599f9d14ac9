"""Vector compression: faiss k-means centroids + per-dimension residual quantisation.

A vector is stored as the id of its nearest centroid and its residual (vector - centroid),
each dimension quantised to `nbits` bits (ColBERTv2 / PLAID). Bucket cutoffs and the value
each bucket decodes to are fitted per dimension on held-out residuals of the training sample:
cutoffs at the quantiles i / 2^nbits, values at the quantiles (i + 0.5) / 2^nbits.
`nbits=16` stores the residual-free vector as float16 (no quantisation), still with its
centroid id so the inverted lists work the same way.

An optional PCA (uncentred, so inner products keep their meaning) maps vectors to fewer
dimensions before all of this; queries go through the same projection (`project`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numba
import numpy as np
import torch
from tqdm.auto import tqdm

from indexes.files import load_npy
from indexes.codec.kmeans import nearest_centroids, spherical_kmeans

__all__ = ["ResidualCodec", "default_n_centroids", "pack_bits"]

VALID_NBITS = (1, 2, 4, 16)


def default_n_centroids(n_vectors: int) -> int:
    """2^floor(log2(4 * sqrt(n_vectors))), between 16 and 65,536, and at most n_vectors / 8.

    A quarter of PLAID's 16 * sqrt(n): on 2 CPU cores PLAID's count makes k-means and
    assignment cost more than encoding with a small model (docs/benchmarks.md has the numbers).
    """
    target = 4 * math.sqrt(max(n_vectors, 1))
    n = 2 ** int(math.floor(math.log2(max(target, 1))))
    cap = 2 ** int(math.floor(math.log2(max(n_vectors // 8, 1))))
    return int(max(16, min(n, cap, 65536))) if n_vectors >= 128 else int(max(1, min(n, cap)))


def pack_bits(buckets: np.ndarray, nbits: int) -> np.ndarray:
    """(n, d) uint8 values < 2^nbits -> (n, d * nbits / 8) uint8, first value in the high bits."""
    per_byte = 8 // nbits
    n, d = buckets.shape
    grouped = buckets.reshape(n, d // per_byte, per_byte).astype(np.uint8)
    shifts = np.arange(per_byte - 1, -1, -1, dtype=np.uint8) * nbits
    return np.bitwise_or.reduce(grouped << shifts, axis=2).astype(np.uint8)


def _pack_residuals_kernel(x, centroids, ids, cutoffs, nbits, out):
    """out[i] = pack_bits(bucketize(x[i] - centroids[ids[i]])) in one pass (compiled below)."""
    per_byte = 8 // nbits
    for i in _prange(x.shape[0]):
        c = ids[i]
        for p in range(out.shape[1]):
            byte = 0
            for k in range(per_byte):
                j = p * per_byte + k
                value = x[i, j] - centroids[c, j]
                bucket = 0
                for level in range(cutoffs.shape[1]):
                    bucket += value > cutoffs[j, level]
                byte = (byte << nbits) | bucket
            out[i, p] = byte


_prange = numba.prange
_pack_residuals = numba.njit(cache=True, nogil=True, parallel=True)(_pack_residuals_kernel)


@dataclass
class ResidualCodec:
    """Centroids (n_centroids, dim) float32 (values exact in float16, as stored); per-dimension
    cutoffs (dim, 2^nbits - 1) and bucket values (dim, 2^nbits) float32; optional projection
    (input_dim, dim) float32."""

    centroids: np.ndarray
    nbits: int
    cutoffs: np.ndarray
    bucket_values: np.ndarray
    projection: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def n_centroids(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def bytes_per_residual(self) -> int:
        return self.dim * 2 if self.nbits == 16 else self.dim * self.nbits // 8

    # ---- fitting ---------------------------------------------------------------------------

    @classmethod
    def fit(cls, sample: np.ndarray, *, nbits: int = 2, n_centroids: int | None = None,
            pca_dim: int | None = None, n_vectors: int | None = None, niter: int = 10,
            seed: int = 0) -> "ResidualCodec":
        """Fit on `sample` (n, input_dim) float unit vectors.

        n_vectors: size of the whole collection, for the default centroid count (defaults to
        len(sample)). About 40 training points per centroid are used.
        """
        if nbits not in VALID_NBITS:
            raise ValueError(f"nbits must be one of {VALID_NBITS}, got {nbits}")
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        projection = None
        if pca_dim is not None:
            if pca_dim % 8 or not 8 <= pca_dim <= sample.shape[1]:
                raise ValueError(f"pca_dim must be a multiple of 8 in [8, {sample.shape[1]}], got {pca_dim}")
            # Uncentred PCA: top eigenvectors of the second-moment matrix, so <Pq, Pd> ~ <q, d>.
            _, eigvecs = np.linalg.eigh(sample.T.astype(np.float64) @ sample / len(sample))
            projection = np.ascontiguousarray(eigvecs[:, ::-1][:, :pca_dim], dtype=np.float32)
            sample = _normalise(sample @ projection)
        if sample.shape[1] % 8:
            raise ValueError(f"vector dim {sample.shape[1]} must be a multiple of 8 for bit packing")
        n_centroids = n_centroids or default_n_centroids(n_vectors or len(sample))
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(sample))
        heldout = sample[order[: min(len(sample) // 10 + 1, 50_000)]]
        if len(sample) - len(heldout) >= n_centroids:     # only the rows used are copied
            train = sample[order[len(heldout):len(heldout) + 40 * n_centroids]]
        else:
            train = sample[: 40 * n_centroids]
        # Rounded to float16 precision now, so the float16 copy on disk decodes exactly as coded.
        centroids = spherical_kmeans(train, n_centroids, niter=niter, seed=seed).astype(np.float16).astype(np.float32)
        codec = cls(centroids, nbits, np.zeros((sample.shape[1], 0), np.float32),
                    np.zeros((sample.shape[1], 1), np.float32), projection)
        if nbits != 16:
            residuals = heldout - centroids[codec.assign(heldout)]
            levels = 1 << nbits
            # Both sets of quantiles from one partial sort of each dimension.
            q = np.quantile(residuals, np.concatenate([np.arange(1, levels), np.arange(levels) + 0.5]) / levels,
                            axis=0).T.astype(np.float32)
            codec.cutoffs, codec.bucket_values = q[:, :levels - 1].copy(), q[:, levels - 1:].copy()
        return codec

    # ---- encoding (build time, numpy) ------------------------------------------------------

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """(n, input_dim) -> (n, dim) float32 unit rows; identity without PCA. Zero rows stay zero."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.projection is None:
            return vectors
        return _normalise(vectors @ self.projection)

    def assign(self, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) projected vectors -> (n,) int64 id of the nearest centroid (inner product)."""
        return nearest_centroids(vectors, self.centroids)

    def compress(self, vectors: np.ndarray, batch: int = 65536,
                 already_projected: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(n, input_dim) unit vectors -> codes (n,) uint16 or int32, residuals (n, bytes) uint8
        ((n, dim) float16 when nbits is 16). already_projected: rows are (n, dim) already."""
        n = len(vectors)
        codes = np.empty(n, dtype=self.code_dtype)
        if self.nbits == 16:
            residuals = np.empty((n, self.dim), dtype=np.float16)
        else:
            residuals = np.empty((n, self.bytes_per_residual), dtype=np.uint8)
        # A bar only in a terminal and only past 2 s (large collections).
        for start in tqdm(range(0, n, batch), desc="compressing", unit="block", disable=None, delay=2, leave=False):
            x = vectors[start:start + batch]
            x = np.asarray(x, dtype=np.float32) if already_projected else self.project(x)
            ids = self.assign(x)
            codes[start:start + len(x)] = ids
            if self.nbits == 16:
                residuals[start:start + len(x)] = x.astype(np.float16)
                continue
            _pack_residuals(np.ascontiguousarray(x), self.centroids, ids, self.cutoffs, self.nbits,
                            residuals[start:start + len(x)])
        return codes, residuals

    def bucketize(self, residuals: np.ndarray) -> np.ndarray:
        """(n, dim) residuals -> (n, dim) uint8 bucket of each value under its dimension's cutoffs."""
        buckets = np.zeros(residuals.shape, dtype=np.uint8)
        for level in range(self.cutoffs.shape[1]):      # 2^nbits - 1 vectorised comparisons
            buckets += residuals > self.cutoffs[:, level]
        return buckets

    @property
    def code_dtype(self) -> np.dtype:
        return np.dtype(np.uint16 if self.n_centroids <= 65536 else np.int32)

    # ---- decoding (search time, torch on any device) ---------------------------------------

    def decompress(self, codes: np.ndarray | torch.Tensor, residuals: np.ndarray | torch.Tensor,
                   device: str | torch.device = "cpu", normalize: bool = True) -> torch.Tensor:
        """codes (n,), residuals as stored -> (n, dim) float32 vectors on `device`, unit rows
        unless normalize=False (centroid + decoded residual, as quantised)."""
        device = torch.device(device)
        if self.nbits == 16:
            # np.array copies memory-mapped (read-only) rows into a buffer torch may own.
            x = torch.from_numpy(np.array(residuals)).to(device).float()
            return torch.nn.functional.normalize(x, dim=1) if normalize else x
        codes = torch.from_numpy(np.asarray(codes).astype(np.int64)).to(device)
        centroids, table = self.device_tables(device)
        if device.type == "cpu":
            decoded = torch.from_numpy(self._decode_numpy(np.asarray(residuals)))
        else:
            decoded = self._decode_torch(torch.from_numpy(np.array(residuals)).to(device), table)
        x = centroids[codes].add_(decoded)     # in place: one fewer (n, dim) buffer per call
        return x.div_(torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min_(1e-12)) if normalize else x

    @cached_property
    def byte_table(self) -> np.ndarray:
        """(n_bytes * 256, 8 / nbits) float32: row p * 256 + b holds what byte b decodes to at position p."""
        table = self.device_tables("cpu")[1].numpy()
        return table.reshape(-1, table.shape[2])

    def _decode_numpy(self, packed: np.ndarray) -> np.ndarray:
        """(n, n_bytes) uint8 -> (n, dim) float32 residuals. On the CPU numpy's `take` gathers
        about 4x faster than torch indexing, and this gather is the cost of decompression."""
        offsets = np.arange(packed.shape[1], dtype=np.int32) * 256
        return np.take(self.byte_table, packed.astype(np.int32) + offsets, axis=0).reshape(len(packed), self.dim)

    def _decode_torch(self, packed: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(n, n_bytes) uint8 -> (n, dim) float32; table[p, byte] holds the values of that byte's dimensions."""
        rows = torch.arange(packed.shape[1], device=packed.device)
        return table[rows, packed.long()].reshape(len(packed), self.dim)

    def device_tables(self, device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Centroids (n_centroids, dim) and the byte decoding table (n_bytes, 256, 8 / nbits)
        float32 on `device` (no table for fp16), built once per device."""
        key = str(device)
        cache = self.__dict__.setdefault("_tables", {})
        if key not in cache and self.nbits == 16:
            cache[key] = (torch.as_tensor(self.centroids).to(device), None)
        if key not in cache:
            per_byte = 8 // self.nbits
            shifts = torch.arange(per_byte - 1, -1, -1) * self.nbits
            buckets = (torch.arange(256)[:, None] >> shifts) & ((1 << self.nbits) - 1)     # (256, per_byte)
            dims = torch.arange(self.dim // per_byte)[:, None] * per_byte + torch.arange(per_byte)
            values = torch.as_tensor(self.bucket_values)
            table = values[dims[:, None, :], buckets[None, :, :]]                        # (n_bytes, 256, per_byte)
            cache[key] = (torch.as_tensor(self.centroids).to(device), table.contiguous().to(device))
        return cache[key]

    # ---- storage ---------------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays that define the codec, by file name (see docs/index-format.md)."""
        out = {"centroids.npy": self.centroids.astype(np.float16),
               "bucket_cutoffs.npy": self.cutoffs.astype(np.float32),
               "bucket_values.npy": self.bucket_values.astype(np.float32)}
        if self.projection is not None:
            out["projection.npy"] = self.projection.astype(np.float32)
        return out

    @classmethod
    def from_arrays(cls, nbits: int, arrays: dict[str, np.ndarray]) -> "ResidualCodec":
        return cls(np.asarray(arrays["centroids.npy"], dtype=np.float32), nbits, np.asarray(arrays["bucket_cutoffs.npy"]),
                   np.asarray(arrays["bucket_values.npy"]),
                   np.asarray(arrays["projection.npy"]) if "projection.npy" in arrays else None)

    @classmethod
    def load(cls, folder: Path, nbits: int) -> "ResidualCodec":
        names = ["centroids.npy", "bucket_cutoffs.npy", "bucket_values.npy", "projection.npy"]
        arrays = {n: load_npy(folder / n) for n in names if (folder / n).is_file()}
        return cls.from_arrays(nbits, arrays)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

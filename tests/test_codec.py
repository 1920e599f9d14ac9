"""Residual codec: bit packing, round-trip error within what the bits allow, PCA, centroid rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from indexes.codec.residual import ResidualCodec, default_n_centroids, pack_bits
from conftest import synthetic_batch


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_pack_unpack_round_trip(nbits):
    rng = np.random.default_rng(nbits)
    buckets = rng.integers(0, 1 << nbits, size=(37, 64)).astype(np.uint8)
    packed = pack_bits(buckets, nbits)
    assert packed.shape == (37, 64 * nbits // 8) and packed.dtype == np.uint8
    bits = np.unpackbits(packed, axis=1).reshape(37, 64, nbits)          # big-endian bit order
    unpacked = (bits * (1 << np.arange(nbits - 1, -1, -1))).sum(axis=2)
    np.testing.assert_array_equal(unpacked, buckets)


def vectors(n=6000, dim=64, seed=0):
    return synthetic_batch(n_docs=n // 10, dim=dim, seed=seed, min_len=10, max_len=11).vectors.astype(np.float32)


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_residual_error_is_within_its_bucket(nbits):
    x = vectors()
    codec = ResidualCodec.fit(x, nbits=nbits, n_centroids=64)
    codes, packed = codec.compress(x)
    assert packed.shape == (len(x), 64 * nbits // 8) and codes.dtype == np.uint16
    decoded = codec.decompress(codes, packed, normalize=False).numpy()
    residual = x - codec.centroids[codes.astype(np.int64)]
    decoded_residual = decoded - codec.centroids[codes.astype(np.int64)]
    bucket = (residual[:, :, None] > codec.cutoffs[None]).sum(axis=2)            # (n, dim)
    dims = np.arange(64)
    np.testing.assert_allclose(decoded_residual, codec.bucket_values[dims, bucket], atol=1e-5)
    # An interior bucket's value lies inside the bucket: the error is at most its width.
    interior = (bucket > 0) & (bucket < (1 << nbits) - 1)
    low = codec.cutoffs[dims, np.clip(bucket - 1, 0, None)]
    high = codec.cutoffs[dims, np.clip(bucket, None, (1 << nbits) - 2)]
    error = np.abs(decoded_residual - residual)
    assert np.all(error[interior] <= (high - low)[interior] + 1e-5)
    # Most values fall inside the fitted range, and the typical error shrinks with the bits.
    assert np.median(error) < {1: 0.08, 2: 0.04, 4: 0.012}[nbits]


def test_more_bits_reconstruct_better():
    x = vectors(seed=1)
    cosines = []
    for nbits in (1, 2, 4, 16):
        codec = ResidualCodec.fit(x, nbits=nbits, n_centroids=64)
        decoded = codec.decompress(*codec.compress(x)).numpy()
        np.testing.assert_allclose(np.linalg.norm(decoded, axis=1), 1.0, atol=1e-5)
        cosines.append(float((decoded * x).sum(axis=1).mean()))
    assert cosines == sorted(cosines), cosines
    assert cosines[-1] > 0.9999 and cosines[2] > 0.99


def test_fp16_mode_keeps_vectors():
    x = vectors(seed=2)
    codec = ResidualCodec.fit(x, nbits=16, n_centroids=32)
    codes, stored = codec.compress(x)
    assert stored.dtype == np.float16 and stored.shape == x.shape
    assert np.abs(codec.decompress(codes, stored).numpy() - x).max() < 1e-3


def test_pca_projection_preserves_inner_products():
    x = vectors(seed=3, dim=64)
    codec = ResidualCodec.fit(x, nbits=16, n_centroids=32, pca_dim=32)
    projected = codec.project(x)
    assert projected.shape == (len(x), 32)
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1.0, atol=1e-5)
    # The topic structure lives in few directions, so projected similarities track the originals.
    i, j = np.arange(0, 500), np.arange(500, 1000)
    original = (x[i] * x[j]).sum(1)
    reduced = (projected[i] * projected[j]).sum(1)
    assert np.corrcoef(original, reduced)[0, 1] > 0.95
    with pytest.raises(ValueError, match="multiple of 8"):
        ResidualCodec.fit(x, nbits=2, pca_dim=30)


def test_assignment_is_the_nearest_centroid():
    x = vectors(seed=4)
    codec = ResidualCodec.fit(x, nbits=2, n_centroids=32)
    brute = np.argmax(x @ codec.centroids.T, axis=1)
    assert (codec.assign(x) == brute).mean() > 0.999


def test_default_centroid_count():
    assert default_n_centroids(1_100_000) == 4096
    assert default_n_centroids(550_000) == 2048
    assert default_n_centroids(1000) == 64
    assert default_n_centroids(100) == 8
    with pytest.raises(ValueError, match="nbits"):
        ResidualCodec.fit(vectors(), nbits=3)


def test_numpy_and_torch_decoders_agree():
    """The CPU decoder (numpy take) and the accelerator decoder (torch indexing) give the same values."""
    x = vectors(seed=5)
    for nbits in (1, 2, 4):
        codec = ResidualCodec.fit(x, nbits=nbits, n_centroids=32)
        _, packed = codec.compress(x)
        table = codec.device_tables("cpu")[1]
        np.testing.assert_array_equal(codec._decode_numpy(packed),
                                      codec._decode_torch(torch.from_numpy(packed), table).numpy())


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_compiled_packing_equals_numpy(nbits):
    from indexes.codec.residual import pack_bits

    x = vectors(seed=nbits)
    codec = ResidualCodec.fit(x, nbits=nbits, n_centroids=64)
    codes, compiled = codec.compress(x)
    projected = codec.project(x)
    np.testing.assert_array_equal(codes, codec.assign(projected))
    reference = pack_bits(codec.bucketize(projected - codec.centroids[codes]), nbits)   # numpy, value by value
    np.testing.assert_array_equal(compiled, reference)

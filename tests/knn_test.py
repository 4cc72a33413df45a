"""advbound.analysis.knn against scipy's cdist + sort: exact distances, duplicates, several blocks
and chunks, large norms (where the matrix-product expansion alone loses precision), bad input."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from advbound.analysis import knn


def _reference(q, r, k):
  d = cdist(q.astype(np.float64), r.astype(np.float64))
  order = np.argsort(d, axis=1, kind="stable")[:, :k]
  return np.take_along_axis(d, order, axis=1), order


@pytest.mark.parametrize("block,chunk", [(1000, 1000), (7, 5), (64, 3)])
def test_matches_cdist(block, chunk):
  rng = np.random.default_rng(0)
  r = rng.normal(size=(150, 12)).astype(np.float32)
  q = rng.normal(size=(23, 12)).astype(np.float32)
  d, i = knn.knn(q, r, 5, reference_block=block, query_chunk=chunk)
  ref_d, ref_i = _reference(q, r, 5)
  np.testing.assert_allclose(d, ref_d, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(i, ref_i)  # no ties in continuous data
  assert d.shape == (23, 5) and i.dtype == np.int32
  np.testing.assert_allclose(knn.mean_knn_distance(q, r, 5, reference_block=block),
                             ref_d.mean(1), rtol=1e-5)


def test_duplicates_and_large_norms():
  """Embeddings far from the origin: the expansion's cancellation would give duplicates a
  distance of order sqrt(1e-7 * |x|^2); the exact re-measurement gives 0."""
  rng = np.random.default_rng(1)
  r = (300.0 + rng.normal(size=(80, 32))).astype(np.float32)
  r[40] = r[3]  # a duplicate inside the reference
  q = np.concatenate([r[[3, 10]], (300.0 + rng.normal(size=(4, 32))).astype(np.float32)])
  d, i = knn.knn(q, r, 3, reference_block=16)
  ref_d, _ = _reference(q, r, 3)
  np.testing.assert_allclose(d, ref_d, rtol=1e-4, atol=1e-4)
  assert d[0, 0] == 0 and d[0, 1] == 0 and set(i[0, :2].tolist()) == {3, 40}
  assert d[1, 0] == 0 and i[1, 0] == 10


def test_k_equal_to_the_reference_and_bad_input():
  rng = np.random.default_rng(2)
  r = rng.normal(size=(6, 3)).astype(np.float32)
  q = rng.normal(size=(2, 3)).astype(np.float32)
  d, _ = knn.knn(q, r, 6, reference_block=4)
  np.testing.assert_allclose(d, _reference(q, r, 6)[0], rtol=1e-5)
  with pytest.raises(ValueError, match="k must be"):
    knn.knn(q, r, 7)
  with pytest.raises(ValueError, match="features"):
    knn.knn(q[:, :2], r, 2)
  with pytest.raises(ValueError, match="finite"):
    knn.knn(np.full((1, 3), np.nan, np.float32), r, 2)


def test_matches_scikit_learn_on_embeddings_with_duplicates():
  """Against sklearn.neighbors.NearestNeighbors (brute force) on ReLU-like features (many zeros)
  whose training set holds exact copies of some queries (distance 0)."""
  from sklearn.neighbors import NearestNeighbors
  rng = np.random.default_rng(5)
  r = np.maximum(rng.normal(size=(400, 64)), 0).astype(np.float32) * 30
  q = np.concatenate([r[:10], np.maximum(rng.normal(size=(20, 64)), 0).astype(np.float32) * 30])
  d, _ = knn.knn(q, r, 5, reference_block=128, query_chunk=8)
  ref = NearestNeighbors(n_neighbors=5, algorithm="brute").fit(r.astype(np.float64))
  ref_d, _ = ref.kneighbors(q.astype(np.float64))
  np.testing.assert_allclose(d, ref_d, rtol=1e-5, atol=1e-4)
  np.testing.assert_array_equal(d[:10, 0], 0.0)

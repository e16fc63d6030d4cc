"""Clustering algorithms of the face clustering stage (no I/O here; see ``streamface.identify.face_clustering``).

- :func:`batched_hac`: the seed's batched two-level agglomerative clustering
  (exact, same partition as SciPy's linkage run batch by batch).
- :func:`knn_hac`: the scalable method, a neighbour graph with exact linkage in
  its components.
- :func:`threshold_hac`: one agglomerative clustering cut at a distance.
- :func:`merge_matched_clusters`, :func:`order_by_size`: the seed's post-processing.
- :class:`Links`, :func:`frame_keys`: what a video knows (two faces of one frame are two
  people, a track is one), kept by all of the above.
- :func:`make_identities`: generated embeddings with identity structure.
"""

from streamface.identify.clustering.constraints import Links, frame_keys, has_conflict
from streamface.identify.clustering.hac import GRAPH_LINKAGES, LINKAGES, batched_hac, canonical_labels, threshold_hac
from streamface.identify.clustering.knn import KNN_METRICS, knn_hac
from streamface.identify.clustering.merging import merge_matched_clusters, order_by_size
from streamface.identify.clustering.synthetic import make_identities
from streamface.identify.clustering.thresholds import SEED_THRESHOLDS, resolve_threshold

__all__ = [
    "GRAPH_LINKAGES", "KNN_METRICS", "LINKAGES", "Links", "SEED_THRESHOLDS", "batched_hac", "canonical_labels",
    "frame_keys", "has_conflict", "knn_hac", "make_identities", "merge_matched_clusters", "order_by_size",
    "resolve_threshold", "threshold_hac",
]

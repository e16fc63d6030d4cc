"""A stream's Hierarchical Retrieval Index in the store: build it from the stored embeddings,
query it with a vector (``streamface index build|query``).

The index itself is :class:`~streamface.identify.hri.HierarchicalRetrievalIndex`; it is saved
beside the store (:func:`~streamface.identify.hri.index_path_for_store`) with each face's label,
so that a query lists the nearest stored faces of the identities it finds.
"""

from __future__ import annotations

import numpy as np

from streamface.identify.hri import HierarchicalRetrievalIndex, HRIError, index_path_for_store

__all__ = ["build_stream_index", "query_stream_index"]


def build_stream_index(store, stream: str, threshold: float, metric: str = "cosine", *,
                       write_labels: bool = True, save: bool = True,
                       batch: int = 65536) -> tuple[HierarchicalRetrievalIndex, np.ndarray]:
    """Insert a stream's stored embeddings (in face order) into a new index.

    Parameters
    ----------
    store : streamface.store.FaceStore
        Opened with ``mode='a'`` when ``write_labels`` is set.
    stream : str
    threshold, metric
        As for :class:`HierarchicalRetrievalIndex`.
    write_labels : bool, default True
        Write each face's HRI label into the stream's index labels (``kind="index"``);
        the cluster labels are left as they are.
    save : bool, default True
        Save the index beside the store (:func:`index_path_for_store`, local stores only).

    Returns
    -------
    index : HierarchicalRetrievalIndex
    labels : numpy.ndarray of int64, shape (num_embedded,)
    """
    source = store.stream(stream)
    n = source.num_embedded
    if n == 0:
        raise HRIError(f"stream {stream!r} has no embeddings to index")
    index = HierarchicalRetrievalIndex(threshold, metric)
    labels = np.empty(n, dtype=np.int64)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        labels[start:stop] = index.insert(source.read_embeddings(start, stop))
    if write_labels:
        with store.writer(stream) as writer:
            writer.write_labels(labels, kind="index")
    if save:
        index.save_to_store(store.location, stream, face_labels=labels)
    return index, labels


def query_stream_index(store, stream: str, vector, *, k: int = 1, faces: int = 5) -> dict:
    """Search a stream's saved index and list the nearest stored faces of the found labels.

    Parameters
    ----------
    store : streamface.store.FaceStore
    stream : str
        A stream indexed by :func:`build_stream_index`.
    vector : array-like, shape (D,)
        The query embedding (same model as the stream's embeddings).
    k : int, default 1
        End nodes (labels) returned, nearest first.
    faces : int, default 5
        Nearest faces listed, among the faces carrying the returned labels.

    Returns
    -------
    dict
        ``labels`` and ``distances`` (k,), ``face_ids`` and ``face_distances`` (<= faces,),
        ``face_labels`` of those faces.
    """
    path = index_path_for_store(store.location, stream)
    index = HierarchicalRetrievalIndex.load(path)
    labels, distances = index.search_batch(np.asarray(vector)[None], k=k, threads=1)
    labels, distances = labels[0], distances[0]
    with np.load(path, allow_pickle=False) as data:
        face_labels = data["face_labels"] if "face_labels" in data.files else None
    out = {"labels": labels, "distances": distances, "face_ids": np.empty(0, dtype=str),
           "face_distances": np.empty(0), "face_labels": np.empty(0, dtype=np.int64)}
    if face_labels is None or faces < 1:
        return out
    rows = np.flatnonzero(np.isin(face_labels, labels[labels >= 0]))
    source = store.stream(stream)
    if rows.size == 0 or rows.max() >= source.num_embedded:
        return out
    emb = source.read_embeddings(int(rows.min()), int(rows.max()) + 1)[rows - rows.min()]
    q = np.asarray(vector, dtype=np.float64)
    emb = emb.astype(np.float64)
    if index.metric == "cosine":
        dist = 1.0 - emb @ q / (np.linalg.norm(emb, axis=1) * np.linalg.norm(q))
    else:
        dist = np.linalg.norm(emb - q, axis=1)
    best = np.argsort(dist, kind="stable")[:faces]
    ids = source.face_ids()
    out.update(face_ids=ids[rows[best]], face_distances=dist[best],
               face_labels=face_labels[rows[best]])
    return out

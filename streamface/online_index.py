"""Online identification: a live HRI label for each face as it is stored.

Used by ``streamface run`` and ``streamface ingest`` with ``--index-threshold``: one
:class:`OnlineIndex` per stream, fed on the thread that commits the stream's faces.
The labels go to the stream's index labels (``kind="index"``), beside and apart from
the cluster labels that ``streamface cluster`` writes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OnlineIndex", "check_index_parameters"]


def check_index_parameters(threshold: float | None, metric: str, analysis) -> None:
    """Raise ValueError when online identification is asked for with impossible parameters."""
    if threshold is None:
        return
    if analysis is None:
        raise ValueError("index_threshold: online identification needs the analysis stage")
    if not threshold > 0:
        raise ValueError(f"index_threshold must be > 0, got {threshold!r}")
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"index_metric must be 'cosine' or 'euclidean', got {metric!r}")


class OnlineIndex:
    """A :class:`~streamface.hri.HierarchicalRetrievalIndex` over one stream's stored faces.

    The index uses :class:`~streamface.hri.HierarchicalRetrievalIndex`'s default insert
    rule. On a resumed stream the index is rebuilt by inserting the stored embeddings in
    order, which gives exactly the tree of a run that never stopped; the labels this
    yields must equal the stored index labels, else those came from elsewhere (another
    threshold or insert rule) and continuing would mix two labelings.

    Parameters
    ----------
    threshold : float
        Distance threshold of the index (> 0).
    metric : {"cosine", "euclidean"}
    """

    def __init__(self, threshold: float, metric: str) -> None:
        self.threshold, self.metric = threshold, metric
        self.index = None

    def resume(self, store_location, stream: str) -> None:
        """Rebuild the index from what the stream already holds, before anything is added."""
        from streamface.hri import HierarchicalRetrievalIndex
        from streamface.store import FaceStore, NotAStoreError, StreamNotFoundError

        self.index = HierarchicalRetrievalIndex(self.threshold, self.metric)
        try:
            stored = FaceStore.open(store_location, mode="r").stream(stream)
        except (NotAStoreError, StreamNotFoundError):
            return  # a new store or stream: nothing to resume
        labelled = stored.num_index_labelled
        if labelled:
            rebuilt = self.index.insert(stored.read_embeddings(0, labelled))
            if not np.array_equal(rebuilt, stored.read_labels(0, labelled, kind="index")):
                raise ValueError(
                    f"stream {stream!r} has index labels that an online index with threshold "
                    f"{self.threshold} (mode {self.index.mode!r}) did not make; run without "
                    f"the online index, or relabel with 'streamface index build'")

    def label_new_faces(self, writer) -> None:
        """Insert the faces ``writer`` has embedded but not labelled, and store their labels."""
        labelled, embedded = writer.num_index_labelled, writer.num_embedded
        if embedded > labelled:
            new = self.index.insert(writer.read_embeddings(labelled, embedded))
            writer.write_labels(new, start=labelled, kind="index")

    def save(self, store_location, stream: str) -> None:
        """Keep the tree beside a local store, with the stream's labels read back from it
        (a remote store keeps only the labels). Call once the stream's commits are done."""
        from streamface.hri import HRIError, index_path_for_store
        from streamface.store import FaceStore, NotAStoreError, StreamNotFoundError

        try:
            path = index_path_for_store(store_location, stream)
        except HRIError:
            return  # a remote store: the labels are in the store, the tree is not kept
        # Read back once here rather than kept in memory: a stream ingested for weeks
        # would otherwise hold an array per commit for the whole run.
        try:
            labels = FaceStore.open(store_location, mode="r").stream(stream).read_labels(
                kind="index")
        except (NotAStoreError, StreamNotFoundError):
            labels = np.empty(0, np.int64)  # nothing was stored
        self.index.save(path, face_labels=labels)

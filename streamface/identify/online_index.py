"""Online identification: a live HRI label for each face as it is stored.

Used by ``streamface run`` and ``streamface ingest`` with ``--index-threshold``: one
:class:`OnlineIndex` per stream, fed on the thread that commits the stream's faces.
The labels go to the stream's index labels (``kind="index"``), beside and apart from
the cluster labels that ``streamface cluster`` writes.

When the store belongs to a collection that ``streamface cluster`` has made
identities for (:func:`streamface.identify.identities.collection_identities`), online labels
start from them: a new index label whose first face is within the threshold of an
identity's mean embedding is that identity's id; the others count on from the
collection's ids. A stream keeps the identities it started with (a copy beside its
index), so a resumed stream labels as a run that never stopped.
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
    """A :class:`~streamface.identify.hri.HierarchicalRetrievalIndex` over one stream's stored faces.

    The index uses :class:`~streamface.identify.hri.HierarchicalRetrievalIndex`'s default insert
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
        self.identities = None  # the collection's IdentitySet, when the stream started from one
        self._label_of: dict[int, int] = {}  # the index's own label -> the online label

    def resume(self, store_location, stream: str) -> None:
        """Rebuild the index from what the stream already holds, before anything is added."""
        from streamface.identify.hri import HierarchicalRetrievalIndex
        from streamface.store import FaceStore, NotAStoreError, StreamNotFoundError

        self.index = HierarchicalRetrievalIndex(self.threshold, self.metric)
        try:
            stored = FaceStore.open(store_location, mode="r").stream(stream)
        except (NotAStoreError, StreamNotFoundError):
            stored = None  # a new store or stream: nothing to resume
        labelled = stored.num_index_labelled if stored is not None else 0
        self._start_from_identities(store_location, stream, fresh=not labelled)
        if labelled:
            embeddings = stored.read_embeddings(0, labelled)
            rebuilt = self._online_labels(self.index.insert(embeddings), embeddings)
            if not np.array_equal(rebuilt, stored.read_labels(0, labelled, kind="index")):
                raise ValueError(
                    f"stream {stream!r} has index labels that an online index with threshold "
                    f"{self.threshold} (mode {self.index.mode!r}) did not make; run without "
                    f"the online index, or relabel with 'streamface index build'")

    def label_new_faces(self, writer) -> None:
        """Insert the faces ``writer`` has embedded but not labelled, and store their labels."""
        labelled, embedded = writer.num_index_labelled, writer.num_embedded
        if embedded > labelled:
            embeddings = writer.read_embeddings(labelled, embedded)
            new = self._online_labels(self.index.insert(embeddings), embeddings)
            writer.write_labels(new, start=labelled, kind="index")

    def _start_from_identities(self, store_location, stream: str, *, fresh: bool) -> None:
        """A fresh stream takes the collection's identities (and keeps a copy beside its index);
        a resumed one the copy it started with, if any. Remote stores keep no copy: no identities."""
        from streamface.identify.hri import HRIError, index_path_for_store
        from streamface.identify.identities import IdentitySet, collection_identities

        try:
            copy = index_path_for_store(store_location, stream).with_suffix(".identities.npz")
        except HRIError:
            return
        if fresh:
            self.identities = collection_identities(store_location)
            if self.identities is not None:
                self.identities.write(copy)
        elif copy.is_file():
            self.identities = IdentitySet.read(copy)

    def _online_labels(self, raw: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        """The index's labels as online labels: the identity a new label's first face is near, or
        the index's label counted on from the identities' ids (unchanged without identities)."""
        if self.identities is None:
            return raw
        from streamface.identify.identities import nearest

        unseen, first = np.unique(raw, return_index=True)
        keep = np.array([int(r) not in self._label_of for r in unseen.tolist()], bool)
        unseen, first = unseen[keep], first[keep]
        if len(unseen):
            best, d = nearest(embeddings[first], self.identities.means, self.metric)
            near = d <= self.threshold
            offset = int(self.identities.ids.max()) + 1
            for r, b, n in zip(unseen.tolist(), best.tolist(), near.tolist()):
                self._label_of[int(r)] = int(self.identities.ids[b]) if n else offset + int(r)
        return np.array([self._label_of[int(r)] for r in raw.tolist()], np.int64)

    def save(self, store_location, stream: str) -> None:
        """Keep the tree beside a local store, with the stream's labels read back from it
        (a remote store keeps only the labels). Call once the stream's commits are done."""
        from streamface.identify.hri import HRIError, index_path_for_store
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

"""Stage 5: sort faces into identities (docs/stages.md §5).

Clusters the embeddings at ``matching_threshold``, joins clusters linked by
track matches whose members are on average closer than ``merging_threshold``,
numbers clusters by size (0 = largest), and writes ``metadata/annotations.json``
in the seed's format. When the features come from a store, the labels are also
written back into the store; on request the faces are copied into
``labeled_faces/<label>/``.

Two methods:

- ``"hac"`` (the seed's): agglomerative clustering of consecutive batches of
  ``matching_batchsize`` faces, then twice over cluster means. The partition is
  exactly the seed's (SciPy/fastcluster linkage batch by batch); ours runs the
  linkage inside the components of the ``<= threshold`` graph, which is exact and
  much faster (:mod:`streamface.identify.clustering.hac`).
- ``"knn"``: a nearest-neighbour graph over all faces (no batches) with exact
  linkage in its components, for millions of faces in bounded memory
  (:mod:`streamface.identify.clustering.knn`).

>>> from streamface.identify.face_clustering import FaceClustering
>>> cluster = FaceClustering(
...     features_path="data/news.zarr::skynews",
...     matches_path=None,              # the store's track matches
...     faces_dir=None,
...     output_dir="data/skynews",
...     metric="cosine",
...     linkage="average",
...     matching_threshold=None,        # the embedding model's calibrated value (seed: 0.3)
...     matching_batchsize=20000,
...     merging_threshold=None,         # the model's value (seed: 0.5)
... )
>>> result = cluster.call()                                     # doctest: +SKIP
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamface.checks import check_int
from streamface.identify.annotations import Annotations, write_annotations
from streamface.identify.clustering import (
    GRAPH_LINKAGES,
    KNN_METRICS,
    LINKAGES,
    Links,
    batched_hac,
    frame_keys,
    knn_hac,
    merge_matched_clusters,
    order_by_size,
    resolve_threshold,
)
from streamface.identify.clustering.thresholds import threshold_warning
from streamface.identify.features import METRICS, Features, load_features, validate_embeddings
from streamface.identify.identities import (
    IDENTITY_MEANS,
    IDENTITY_RECORD,
    IdentityRecord,
    IdentitySet,
    grow_identities,
    known_faces,
    stable_ids,
)
from streamface.identify.tracks import match_rows, read_matches_csv, store_match_rows
from streamface.ops.processes import ProcessExecutor

__all__ = ["ClusteringResult", "FaceClustering", "METHODS", "silhouette"]

#: Clustering methods.
METHODS = ("hac", "knn")

log = logging.getLogger(__name__)


@dataclass
class ClusteringResult:
    """What :meth:`FaceClustering.call` produced.

    Parameters
    ----------
    names : ndarray of str, shape (n,)
        Face ids.
    labels : ndarray of int64, shape (n,)
        Identity per face: ``0..k-1``, 0 = largest, on a first run; the earlier
        ids where a run continues a collection's identities (see
        :mod:`streamface.identify.identities`); -1 for faces a review marked as noise.
    n_clusters : int
        Distinct identities (noise not counted).
    clusters_before_merging : int
    matches : int
        Track-match pairs considered for merging.
    silhouette : float or None
        Silhouette score (sampled above ``silhouette_samples`` faces); None when
        undefined (fewer than 2 clusters, or every face its own cluster).
    annotations_path : Path or None
    labeled_faces : int
        Faces copied into ``labeled_faces/``.
    store_written : bool
        Whether the labels were written into the store.
    seconds : dict
        Time per step.
    thresholds : dict
        The thresholds used (``matching_threshold``, ``merging_threshold``), after
        resolving ``None`` from the embedding model.
    model : str or None
        The embedding model the thresholds were resolved for.
    warnings : list of str
        E.g. no calibrated thresholds for the model (the seed's were used).
    incremental : bool
        Whether only new faces were clustered (earlier identities kept).
    new_faces : int
        Faces clustered by this run (all of them unless incremental).
    joined_faces : int
        New faces that joined an earlier identity.
    new_identities : int
        Identities made of new faces only (on a full run: clusters without an earlier id).
    record_path : Path or None
        The identity record written (``metadata/identities.json``).
    """

    names: np.ndarray
    labels: np.ndarray
    n_clusters: int
    clusters_before_merging: int
    matches: int
    silhouette: float | None
    annotations_path: Path | None
    labeled_faces: int = 0
    store_written: bool = False
    seconds: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)
    model: str | None = None
    warnings: list = field(default_factory=list)
    incremental: bool = False
    new_faces: int = 0
    joined_faces: int = 0
    new_identities: int = 0
    record_path: Path | None = None


def silhouette(x: np.ndarray, labels: np.ndarray, metric: str, *, max_samples: int = 10000,
               random_state: int = 0) -> float | None:
    """Silhouette score of ``labels``; sampled (``max_samples`` faces) above that size.

    Returns
    -------
    float or None
        None when undefined: fewer than 2 clusters or as many clusters as faces
        (among the sampled faces).
    """
    from sklearn.metrics import silhouette_score

    n = len(labels)
    k = len(np.unique(labels))
    if k < 2 or k >= n:
        return None
    sample = None if n <= max_samples else max_samples
    if sample is not None:
        rng = np.random.default_rng(random_state)
        idx = rng.choice(n, size=sample, replace=False)
        k_s = len(np.unique(labels[idx]))
        if k_s < 2 or k_s >= sample:
            return None
        return float(silhouette_score(x[idx], labels[idx], metric=metric))
    return float(silhouette_score(x, labels, metric=metric))


class FaceClustering:
    """Cluster faces into identities (the seed's stage 5); see the module docstring.

    Parameters
    ----------
    features_path : str, path or a list of them
        ``<store>::<stream>``, a store (all its streams), a glob of stores, the base
        name of rotated stores, several of these, a ``.npz`` or the seed's features
        ``.pkl`` (see :mod:`streamface.identify.features`; pickles only from trusted sources).
        The faces of every stream are clustered as one set, and each stream gets
        its labels.
    matches_path : path, optional
        The seed's ``matches.csv``. Default: the store's track matches when the
        features come from a store, else no merging.
    faces_dir : path, optional
        Folder of face images (``<face id>.png``), for ``copy_faces``; with a store
        the crops can come from the store instead.
    output_dir : path, optional
        Writes ``<output_dir>/metadata/annotations.json`` (and ``labeled_faces/``),
        and, for store features, the identity record ``metadata/identities.json``
        that later incremental runs continue from. May be None only when the
        features come from a store (labels go to the store only; every run is full).
    metric : str, default "cosine"
        One of :data:`streamface.identify.features.METRICS`; ``knn`` supports cosine,
        correlation, euclidean and sqeuclidean.
    linkage : str, default "average"
        One of :data:`streamface.identify.clustering.LINKAGES`; ``knn`` supports single,
        complete, average and weighted; centroid, median and ward need euclidean.
        The seed's was complete; average holds hard TV faces together at the same
        cut, and with single, complete, average and weighted no cluster holds two
        faces of one frame (face ids name their frame; see
        :mod:`streamface.identify.clustering.constraints`). ``docs/clustering.md`` has the measurements.
    matching_threshold : float or None, default None
        Linkage cut. None: the embedding model's calibrated value (SFace 0.5); the
        seed's 0.3 for its ArcFace+FaceNet, and for a model without calibrated
        values (with a warning). See :mod:`streamface.identify.clustering.thresholds`.
    matching_batchsize : int, default 20000
        ``hac``: faces per batch (the seed's); ``knn``: the largest group one
        linkage handles is ``min(matching_batchsize, max_component)``.
    merging_threshold : float or None, default None
        Matched clusters join when their mean member distance is below it.
        None: the embedding model's calibrated value (SFace 0.6); the seed's 0.5
        for its ArcFace+FaceNet.
    method : {"hac", "knn"}, default "hac"
    stream : str, optional
        Only this stream (or these, comma-separated) of the stores.
    copy_faces : bool, default False
        Copy each face into ``<output_dir>/labeled_faces/<label>/`` (the seed asked
        with ``input()``; here it is an option).
    write_store : bool, default True
        Write the labels back into the store when the features come from one.
    n_neighbors : int, default 32
        ``knn``: neighbours per face.
    max_component : int, default 5000
        ``knn``: largest group clustered by one linkage.
    silhouette_samples : int, default 10000
        The silhouette is computed on at most this many faces (0: not computed).
    random_state : int, default 0
    verbose : bool, default True
        Print progress, as the seed did.
    model : str, optional
        The embedding model's registry name, for resolving ``None`` thresholds;
        default: the model recorded in the store (``.npz``/``.pkl`` record none).
    executor : streamface.ops.ray_pool.Executor, optional
        Runs the clustering's independent pieces (batches, components), e.g. a
        :class:`~streamface.ops.ray_pool.RayPool`; the labels are the same whatever runs them.
        Default: a :class:`~streamface.ops.processes.ProcessExecutor` on this machine's CPUs.
    incremental : bool, default True
        With an identity record in ``output_dir``: cluster only the faces it does
        not count and join them to the earlier identities or make new ones
        (:mod:`streamface.identify.identities`). False: recluster every face (earlier ids
        kept where a new cluster overlaps an earlier identity most).
    reviewed : path, optional
        Reviewed annotations (``annotate``'s ``annotations_manual.json``): their
        labels replace the stored ones of the faces they name, so the review's
        merges and noise hold in this and every later incremental run.
    """

    def __init__(self, features_path, matches_path=None, faces_dir=None, output_dir=None,
                 metric: str = "cosine", linkage: str = "average", matching_threshold: float | None = None,
                 matching_batchsize: int = 20000, merging_threshold: float | None = None, *,
                 method: str = "hac", stream: str | None = None, copy_faces: bool = False,
                 write_store: bool = True, n_neighbors: int = 32, max_component: int = 5000,
                 silhouette_samples: int = 10000, random_state: int = 0, verbose: bool = True,
                 model: str | None = None, executor=None, incremental: bool = True,
                 reviewed=None) -> None:
        self.features_path = features_path
        self.matches_path = matches_path
        self.faces_dir = faces_dir
        self.output_dir = output_dir
        self.metric = metric
        self.linkage = linkage
        self.matching_threshold = matching_threshold
        self.matching_batchsize = matching_batchsize
        self.merging_threshold = merging_threshold
        self.method = method
        self.stream = stream
        self.copy_faces = copy_faces
        self.write_store = write_store
        self.n_neighbors = n_neighbors
        self.max_component = max_component
        self.silhouette_samples = silhouette_samples
        self.random_state = random_state
        self.verbose = verbose
        self.model = model
        self.executor = executor
        self.incremental = incremental
        self.reviewed = reviewed

    # ---- validation -----------------------------------------------------------------------------

    def _validate_params(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {self.method!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric: expected one of {METRICS}, got {self.metric!r}")
        if self.linkage not in LINKAGES:
            raise ValueError(f"linkage: expected one of {LINKAGES}, got {self.linkage!r}")
        if self.linkage in ("centroid", "median", "ward") and self.metric != "euclidean":
            raise ValueError(f"linkage: {self.linkage!r} needs metric='euclidean', got metric={self.metric!r}")
        if self.method == "knn":
            if self.metric not in KNN_METRICS:
                raise ValueError(f"metric: method='knn' supports {KNN_METRICS}, got {self.metric!r}")
            if self.linkage not in GRAPH_LINKAGES:
                raise ValueError(f"linkage: method='knn' supports {GRAPH_LINKAGES}, got {self.linkage!r}")
        for name in ("matching_batchsize", "n_neighbors", "max_component"):
            check_int(name, getattr(self, name))
        check_int("silhouette_samples", self.silhouette_samples, minimum=0)
        if self.matches_path is not None and not Path(self.matches_path).is_file():
            raise FileNotFoundError(f"matches_path: no such file {str(self.matches_path)!r}")
        if self.faces_dir is not None and not Path(self.faces_dir).is_dir():
            raise FileNotFoundError(f"faces_dir: no such folder {str(self.faces_dir)!r}")
        if self.reviewed is not None and not Path(self.reviewed).is_file():
            raise FileNotFoundError(f"reviewed: no such file {str(self.reviewed)!r}")

    def _validate_sources(self, features: Features) -> None:
        from_store = features.from_store
        if self.output_dir is None and not from_store:
            raise ValueError("output_dir: required unless the features come from a store")
        if self.reviewed is not None and not from_store:
            raise ValueError("reviewed: needs features from a store (the labels it keeps are the store's)")
        if self.copy_faces:
            if self.output_dir is None:
                raise ValueError("output_dir: copy_faces=True needs an output folder")
            if self.faces_dir is None and not from_store:
                raise ValueError("faces_dir: copy_faces=True needs the face images (faces_dir) "
                                 "or features from a store")

    def _say(self, message: str) -> None:
        if self.verbose:
            print(message, flush=True)

    # ---- the stage ------------------------------------------------------------------------------

    def call(self) -> ClusteringResult:
        """Cluster, merge, renumber, and write the results.

        Returns
        -------
        ClusteringResult

        Raises
        ------
        ValueError
            A parameter out of its allowed values (named in the message), no
            embeddings, NaN/infinite or zero vectors (cosine), or a store whose
            writer is busy.
        FileNotFoundError
            ``features_path``, ``matches_path`` or ``faces_dir`` missing.
        """
        self._validate_params()
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        self._say(f"Reading features {self.features_path} ...")
        features = load_features(self.features_path, stream=self.stream)
        self._validate_sources(features)
        model = self.model or features.model
        matching = resolve_threshold("matching_threshold", self.matching_threshold, model)
        merging = resolve_threshold("merging_threshold", self.merging_threshold, model)
        note = threshold_warning(model, self.matching_threshold, self.merging_threshold, metric=self.metric)
        notes = [note] if note else []
        for note in notes:
            log.warning(note)
            self._say(f"Warning: {note}")
        x = features.embeddings
        validate_embeddings(x, self.metric, features.names)
        pairs_i, pairs_j = self._matches(features)
        # Earlier identities: the faces the collection's record counts keep their labels.
        record_path = None
        if self.output_dir is not None and features.from_store:
            record_path = Path(self.output_dir) / "metadata" / IDENTITY_RECORD
        record = IdentityRecord.read(record_path) if record_path is not None else None
        previous = self._previous_labels(features)
        prior = known_faces(features, record)
        known = prior if self.incremental else np.zeros(len(features), bool)
        collection = features
        if known.any():
            todo = np.flatnonzero(~known)
            features = collection.take(todo)
            x = features.embeddings
            inside = ~known[pairs_i] & ~known[pairs_j]
            position = np.full(len(known), -1, np.int64)
            position[todo] = np.arange(len(todo))
            pairs_i, pairs_j = position[pairs_i[inside]], position[pairs_j[inside]]
        seconds["read"] = time.perf_counter() - t0
        if known.all():
            self._say("No new faces: the earlier identities stand.")
            return self._finish(collection, previous, record, record_path, seconds, before=0,
                                matches=0, thresholds={"matching_threshold": matching,
                                                       "merging_threshold": merging},
                                model=model, notes=notes, incremental=True, new_faces=0, joined=0, new_ids=0)

        t0 = time.perf_counter()
        self._say(f"Clustering {len(x)} faces ({self.method}, {self.linkage} linkage, "
                  f"{self.metric} <= {matching:g}) ...")
        # Two faces of one frame never share a cluster. Track matches still join clusters in
        # the merge below (mean distance < merging_threshold, as the seed), never across a frame.
        links = Links.of_faces(frame_keys(features.names)) if self.linkage in GRAPH_LINKAGES else None
        executor = self.executor if self.executor is not None else ProcessExecutor()
        if self.method == "hac":
            labels = batched_hac(x, matching, metric=self.metric, linkage=self.linkage,
                                 batch_size=int(self.matching_batchsize), executor=executor, links=links)
        else:
            labels = knn_hac(x, matching, metric=self.metric, linkage=self.linkage,
                             n_neighbors=int(self.n_neighbors),
                             max_component=int(min(self.max_component, self.matching_batchsize)),
                             random_state=self.random_state, executor=executor, links=links)
        before = int(labels.max()) + 1
        seconds["cluster"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        self._say(f"Merging {before} clusters with {len(pairs_i)} track matches (< {merging:g}) ...")
        labels = merge_matched_clusters(x, labels, pairs_i, pairs_j, threshold=merging, metric=self.metric,
                                        links=links)
        labels = order_by_size(labels)
        n_clusters = int(labels.max()) + 1
        seconds["merge"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        new_faces, joined, new_ids = len(labels), 0, n_clusters
        if known.any():
            growth = grow_identities(collection.embeddings, previous, ~known, labels, matching,
                                     metric=self.metric, next_id=record.next_id)
            labels, joined, new_ids = growth.labels, growth.joined_faces, growth.new_identities
            self._say(f"{new_faces} new faces: {joined} joined earlier identities, {new_ids} new identities")
        elif prior.any():
            labels, _ = stable_ids(labels, np.where(prior, previous, -1), next_id=record.next_id)
            new_ids = int(len(np.setdiff1d(labels, previous[prior])))
        features = collection
        x = features.embeddings
        seconds["identities"] = time.perf_counter() - t0
        thresholds = {"matching_threshold": matching, "merging_threshold": merging}
        return self._finish(features, labels, record, record_path, seconds, before=before,
                            matches=len(pairs_i), thresholds=thresholds, model=model, notes=notes,
                            incremental=bool(known.any()), new_faces=new_faces, joined=joined, new_ids=new_ids)

    def _finish(self, features: Features, labels: np.ndarray, record: IdentityRecord | None,
                record_path: Path | None, seconds: dict, *, before: int, matches: int,
                thresholds: dict, model, notes: list, incremental: bool, new_faces: int, joined: int,
                new_ids: int) -> ClusteringResult:
        """Score, write the annotations, the store's labels and the identity record; the result."""
        x = features.embeddings
        labels = np.asarray(labels, np.int64)
        n_clusters = int(len(np.unique(labels[labels >= 0])))

        t0 = time.perf_counter()
        score = None
        if self.silhouette_samples:
            score = silhouette(x, labels, self.metric, max_samples=int(self.silhouette_samples),
                               random_state=self.random_state)
        self._say(f"{n_clusters} clusters; silhouette score: {'undefined' if score is None else f'{score:.3f}'}")
        seconds["silhouette"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        annotations_path = None
        if self.output_dir is not None:
            annotations_path = Path(self.output_dir) / "metadata" / "annotations.json"
            self._say(f"Writing {len(labels)} annotations to {annotations_path} ...")
            write_annotations(annotations_path, Annotations(features.names, labels, features.extra))
        store_written = False
        if features.from_store and self.write_store:
            self._say(f"Writing labels into {features.source} ...")
            _write_store_labels(features, labels)
            store_written = True
            if record_path is not None:
                # Only labels that reached the store count as the collection's.
                (record or IdentityRecord()).updated(features, labels, model).write(record_path)
                IdentitySet.from_labels(x, labels).write(record_path.with_name(IDENTITY_MEANS))
        copied = self._copy_faces(features, labels) if self.copy_faces else 0
        seconds["write"] = time.perf_counter() - t0
        return ClusteringResult(features.names, labels, n_clusters, before, matches, score,
                                annotations_path, copied, store_written, seconds, thresholds, model, notes,
                                incremental, new_faces, joined, new_ids,
                                record_path if store_written and record_path is not None else None)

    def _previous_labels(self, features: Features) -> np.ndarray:
        """The stored labels (UNSET where none), with a review's labels for the faces it names."""
        from streamface.identify.annotations import read_annotations
        from streamface.store import UNSET_LABEL

        if features.stored_labels is None:
            return np.full(len(features), UNSET_LABEL, np.int64)
        labels = features.stored_labels.astype(np.int64)
        if self.reviewed is not None:
            reviewed = read_annotations(self.reviewed).label_of()
            for row, name in enumerate(features.names.tolist()):
                if name in reviewed:
                    labels[row] = int(reviewed[name])
        return labels

    def _matches(self, features: Features) -> tuple[np.ndarray, np.ndarray]:
        if self.matches_path is not None:
            return match_rows(features.names, read_matches_csv(self.matches_path))
        # Each stream's track matches, in the rows of the collection (tracks never cross streams).
        found = [tuple(rows + source.start for rows in store_match_rows(source.store, source.stream,
                                                                         len(source.rows)))
                 for source in features.sources]
        if not found:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate([i for i, _ in found]), np.concatenate([j for _, j in found])

    def _copy_faces(self, features: Features, labels: np.ndarray) -> int:
        root = Path(self.output_dir) / "labeled_faces"
        self._say(f"Copying {len(labels)} faces to {root} ...")
        for label in np.unique(labels).tolist():
            (root / str(label)).mkdir(parents=True, exist_ok=True)
        if self.faces_dir is not None:
            missing = 0
            for file, label in zip(features.files, labels.tolist()):
                src = Path(self.faces_dir) / file
                if not src.is_file():
                    missing += 1
                    continue
                shutil.copyfile(src, root / str(label) / file)
            if missing:
                warnings.warn(f"{missing} face images were not found in {self.faces_dir} and not copied",
                              UserWarning, stacklevel=3)
            return len(labels) - missing
        return sum(_copy_store_crops(features, source, labels, root) for source in features.sources)


def _write_store_labels(features: Features, labels: np.ndarray) -> None:
    """Write each stream's labels; a stream whose stored labels are these already is not opened
    for writing (an incremental run leaves earlier days' stores alone)."""
    from streamface.store import FaceStore, StoreError

    for source in features.sources:
        part = labels[source.start:source.stop]
        if features.stored_labels is not None and np.array_equal(features.stored_labels[source.start:source.stop],
                                                                  part):
            continue
        try:
            store = FaceStore.open(source.store, mode="a")
            with store.writer(source.stream) as writer:
                # Features are rows [0, n) of the stream, so labels go in row order from 0.
                order = np.argsort(source.rows, kind="stable")
                writer.write_labels(part[order].astype(np.int32), start=int(source.rows[order][0]))
        except StoreError as exc:
            raise ValueError(f"could not write labels into {source.name}: {exc}") from None


def _copy_store_crops(features: Features, where, labels: np.ndarray, root: Path, batch_rows: int = 256) -> int:
    from streamface.store import FaceStore
    from streamface.atomic_write import atomic_write
    from streamface.store.export import png_bytes

    source = FaceStore.open(where.store, mode="r").stream(where.stream)
    part = slice(where.start, where.stop)
    label_of_row = dict(zip(where.rows.tolist(), labels[part].tolist()))
    file_of_row = dict(zip(where.rows.tolist(), features.files[part]))
    written = 0
    rows = np.sort(where.rows)
    for s in range(0, len(rows), batch_rows):
        lo, hi = int(rows[s]), int(rows[min(len(rows), s + batch_rows) - 1]) + 1
        faces = source.read_faces(lo, hi, columns=("crop",))
        for row, crop in zip(range(lo, hi), faces.crop_images()):
            if row in label_of_row:
                atomic_write(root / str(label_of_row[row]) / file_of_row[row], png_bytes(crop), fsync=False)
                written += 1
    return written


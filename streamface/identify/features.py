"""Load face embeddings for the analysis stages: from a face store or a seed features file.

``features_path`` in every stage (clustering, matching, evaluation) is one of:

- ``<store>::<stream>``: a Zarr face store and one of its streams, e.g.
  ``data/news.zarr::skynews`` (the store may be an fsspec URL). The faces with a
  committed embedding (rows ``[0, num_embedded)``) are used; their attributes come
  along (for ``annotations.json``) and labels can be written back.
- a store path alone (a folder holding ``zarr.json``, or a URL): every stream of
  it, unless ``stream=`` (``--stream``) narrows them;
- a collection of stores: a glob (``'news-*.zarr'``), the base name of rotated
  stores (``news.zarr`` for ``news-2026-11-28.zarr``, ...; as ``streamface info``
  takes them), or a list of any of these. Their streams are read as one set of
  faces (face ids are unique across streams); they must share one embedding
  model and dimension.
- a ``.npz`` file with arrays ``names`` (n,) and ``embeddings`` (n, D): safe to share.
- a ``.pkl`` file as the seed's face analysis wrote it: a dict ``{"<face>.png":
  (embedding, attributes, expression, mask, pose)}``; also accepted: a dict
  ``{name: embedding}`` or a pair ``(names, embeddings)``.

.. warning::
   Reading a pickle runs code chosen by whoever wrote the file. Only pickles the
   user names are read, never one found by a search; do not pass pickles from
   sources you do not trust (prefer a store or ``.npz``).

Face names are reduced to stems (``.png`` dropped): the seed keyed features by
file name but annotations by stem.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamface.identify.annotations import face_stem

__all__ = ["FeatureSource", "Features", "METRICS", "labelled_embeddings", "load_features", "names_stores",
           "split_store_path", "validate_embeddings"]

#: Distance metrics the analysis stages accept (SciPy names).
METRICS = ("cosine", "euclidean", "sqeuclidean", "cityblock", "chebyshev", "correlation")

_SEED_POSE = ("yaw", "pitch", "roll")


@dataclass(frozen=True)
class FeatureSource:
    """One store stream whose faces are rows ``[start, start + len(rows))`` of a :class:`Features`.

    Parameters
    ----------
    store : str
        The store's location.
    stream : str
    start : int
        Its first row in the features.
    rows : ndarray of int64, shape (m,)
        Its faces' rows in the stream (``0..m-1``: the embedded faces).
    model : str or None
        The embedding model recorded for the stream.
    """

    store: str
    stream: str
    start: int
    rows: np.ndarray
    model: str | None

    @property
    def stop(self) -> int:
        return self.start + len(self.rows)

    @property
    def name(self) -> str:
        return f"{self.store}::{self.stream}"


@dataclass
class Features:
    """Face embeddings with their names and, when known, where they came from.

    Parameters
    ----------
    names : ndarray of str, shape (n,)
        Face ids (stems), unique.
    embeddings : ndarray of float32, shape (n, D)
    files : list of str
        Each face's image file name (``<id>.png`` unless the source said otherwise).
    extra : list of dict, optional
        Per face, the record fields of ``annotations.json`` besides the label
        (``mask``, ``attributes``), or None when the source has none.
    store, stream : str, optional
        The face store and stream they were read from.
    rows : ndarray of int64, shape (n,), optional
        Their face rows in that stream.
    model : str, optional
        The embedding model's name, when recorded.
    sources : list of FeatureSource
        Every store stream the faces came from, in row order (empty for a
        ``.npz``/``.pkl``). ``store``, ``stream`` and ``rows`` are set only when
        there is exactly one.
    stored_labels : ndarray of int32, shape (n,), optional
        The labels the store holds for these faces
        (:data:`~streamface.store.schema.UNSET_LABEL` where none); None for files.
    """

    names: np.ndarray
    embeddings: np.ndarray
    files: list[str]
    extra: list[dict[str, Any]] | None = None
    store: str | None = None
    stream: str | None = None
    rows: np.ndarray | None = None
    model: str | None = None
    sources: list[FeatureSource] = field(default_factory=list)
    stored_labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def from_store(self) -> bool:
        """Whether the faces came from store streams (labels can be written back)."""
        return bool(self.sources)

    @property
    def source(self) -> str:
        """Where the features came from, for messages."""
        if len(self.sources) > 1:
            stores = len({s.store for s in self.sources})
            return f"{len(self.sources)} streams of {stores} store{'s' if stores > 1 else ''}"
        return f"{self.store}::{self.stream}" if self.store is not None else "features"

    def take(self, index: np.ndarray) -> Features:
        """The faces at ``index`` (rows of this object; increasing when the faces come from several
        streams, so that each stream's faces stay together)."""
        index = np.asarray(index, np.int64)
        if len(self.sources) > 1 and np.any(np.diff(index) <= 0):
            raise ValueError("take: features of several streams take increasing rows")
        sources, start = [], 0
        for s in self.sources:
            inside = index[(index >= s.start) & (index < s.stop)]
            if len(inside):
                sources.append(FeatureSource(s.store, s.stream, start, s.rows[inside - s.start], s.model))
                start += len(inside)
        one = sources[0] if len(sources) == 1 else None
        return Features(self.names[index], self.embeddings[index], [self.files[i] for i in index.tolist()],
                        None if self.extra is None else [self.extra[i] for i in index.tolist()],
                        one.store if one else None, one.stream if one else None, one.rows if one else None,
                        self.model, sources, None if self.stored_labels is None else self.stored_labels[index])


def split_store_path(features_path: str | os.PathLike) -> tuple[str, str | None]:
    """``"a.zarr::news"`` -> ``("a.zarr", "news")``; a path without ``::`` -> ``(path, None)``."""
    text = os.fspath(features_path)
    if "::" in text:
        store, _, stream = text.rpartition("::")
        return store, stream or None
    return text, None


def _is_store(path: str) -> bool:
    if "://" in path and not path.startswith("file://"):
        return True
    return (Path(path) / "zarr.json").is_file()


def load_features(features_path, *, stream=None) -> Features:
    """Read face embeddings from store streams, a ``.npz`` or a seed ``.pkl`` (see the module docstring).

    Parameters
    ----------
    features_path : str, path, or a sequence of them
        ``<store>::<stream>``, a store (all its streams), a glob of stores, the
        base name of rotated stores, several of these, or one ``.npz``/``.pkl`` file.
    stream : str or sequence of str, optional
        Only these streams of the stores (a str may list several, comma-separated).

    Returns
    -------
    Features
        Embeddings as float32 (n, D), the streams' faces in the order the stores
        and streams were named (stores of a glob or a rotation base oldest first,
        streams by name); not yet checked for NaN or zero rows (see
        :func:`validate_embeddings`).

    Raises
    ------
    FileNotFoundError
        Nothing at ``features_path``.
    ValueError
        An unknown file type, a glob matching no store, no embeddings in any
        selected stream, streams embedded by different models or dimensions,
        duplicate names, or embeddings that are not one (n, D) array of numbers.
    """
    arguments = [features_path] if isinstance(features_path, (str, os.PathLike)) else list(features_path)
    if not arguments:
        raise ValueError("features_path: no store or file named")
    wanted = _stream_names(stream)
    if len(arguments) == 1:
        path, named_stream = split_store_path(arguments[0])
        if named_stream is not None and wanted and wanted != [named_stream]:
            raise ValueError(f"stream: {stream!r} given, but features_path names stream {named_stream!r}")
        if named_stream is None and not names_stores(path):
            return _from_file(path, wanted)
    return _from_stores([os.fspath(a) for a in arguments], wanted)


def _stream_names(stream) -> list[str]:
    if stream is None:
        return []
    names = stream.split(",") if isinstance(stream, str) else [str(s) for s in stream]
    return list(dict.fromkeys(n.strip() for n in names if n.strip()))


def names_stores(features_path: str | os.PathLike) -> bool:
    """Whether ``features_path`` names stores (``::<stream>``, a store, a glob, a rotation base), not a file."""
    import glob

    from streamface.store.rotation import rotated_stores

    path, named = split_store_path(features_path)
    if named is not None or _is_store(path) or glob.has_magic(path):
        return True
    return not Path(path).exists() and bool(rotated_stores(path))


def _from_file(path: str, wanted: list[str]) -> Features:
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"features_path: no such file or store {path!r}")
    if wanted:
        raise ValueError(f"stream: {','.join(wanted)!r} given, but {path!r} is not a face store")
    suffix = file.suffix.lower()
    if suffix == ".npz":
        with np.load(file, allow_pickle=False) as npz:
            missing = [k for k in ("names", "embeddings") if k not in npz]
            if missing:
                raise ValueError(f"{path}: a features .npz needs arrays 'names' and 'embeddings' (missing {missing})")
            return _make(npz["names"], npz["embeddings"], None, None, str(file))
    if suffix in (".pkl", ".pickle"):
        with open(file, "rb") as fp:
            obj = pickle.load(fp)  # noqa: S301 - only a file the user named; see the module warning
        return _from_pickle(obj, str(file))
    raise ValueError(f"features_path: {path!r} is neither a face store, a .npz nor a .pkl file")


def _from_pickle(obj: Any, source: str) -> Features:
    if isinstance(obj, dict):
        if not obj:
            raise ValueError(f"{source}: holds no embeddings (an empty dict)")
        keys = [str(k) for k in obj.keys()]
        values = list(obj.values())
        if all(isinstance(v, (tuple, list)) and len(v) == 5 for v in values):
            embeddings = [v[0] for v in values]
            extra = [_seed_extra(v) for v in values]
        else:
            embeddings, extra = values, None
        return _make(keys, embeddings, keys, extra, source)
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        names, embeddings = obj
        return _make(names, embeddings, None, None, source)
    raise ValueError(f"{source}: expected a dict {{name: embedding}} (the seed's features), or a pair "
                     f"(names, embeddings); got {type(obj).__name__}")


def _seed_extra(value: tuple) -> dict[str, Any]:
    """The seed's (embedding, attributes, expression, mask, pose) as annotation record fields."""
    _, attributes, expression, mask, pose = value
    record: dict[str, Any] = {"mask": mask, "attributes": {**dict(attributes or {})}}
    record["attributes"]["expression"] = dict(expression or {})
    record["attributes"]["pose"] = dict(pose or {})
    return record


def _make(names, embeddings, files, extra, source: str, **where) -> Features:
    names = [str(n) for n in np.asarray(names).reshape(-1).tolist()]
    try:
        emb = np.asarray(embeddings, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: embeddings are not an array of numbers of one width") from None
    if emb.ndim != 2:
        raise ValueError(f"{source}: embeddings must be (n, D), got shape {emb.shape}")
    if len(names) != len(emb):
        raise ValueError(f"{source}: {len(names)} names for {len(emb)} embeddings")
    stems = np.array([face_stem(n) for n in names], dtype=str)
    uniq, counts = np.unique(stems, return_counts=True)
    if len(uniq) != len(stems):
        raise ValueError(f"{source}: duplicate face names, e.g. {str(uniq[counts > 1][0])!r}")
    files = [f"{s}.png" for s in stems.tolist()] if files is None else [os.path.basename(f) for f in files]
    return Features(stems, np.ascontiguousarray(emb), files, extra, **where)


def _selected_streams(arguments: list[str], wanted: list[str]) -> list[tuple[str, Any, str]]:
    """``(location, opened store, stream)`` for every stream the arguments and ``wanted`` select."""
    from streamface.store import FaceStore, StoreError
    from streamface.store.rotation import expand_store_locations

    selected: list[tuple[str, Any, str]] = []
    for argument in arguments:
        path, named = split_store_path(argument)
        locations = expand_store_locations([path])
        if not locations:
            raise ValueError(f"features_path: no Streamface store matches {path!r}")
        for location in locations:
            try:
                store = FaceStore.open(location, mode="r")
            except FileNotFoundError:
                raise FileNotFoundError(f"features_path: no face store at {location!r}") from None
            except StoreError as exc:
                raise ValueError(f"features_path: {exc}") from None
            if named is not None:
                if wanted and named not in wanted:
                    continue
                try:
                    store.stream(named)
                except StoreError as exc:
                    raise ValueError(f"stream: {exc}") from None
                names = [named]
            else:
                names = [n for n in store.streams if not wanted or n in wanted]
            selected += [(location, store, name) for name in names]
    missing = [n for n in wanted if n not in {name for _, _, name in selected}]
    if missing:
        raise ValueError(f"stream: no selected store holds stream {missing[0]!r} "
                         f"(stores: {', '.join(dict.fromkeys(split_store_path(a)[0] for a in arguments))})")
    if not selected:
        raise ValueError(f"features_path: {', '.join(arguments)} holds no streams")
    return selected


def _from_stores(arguments: list[str], wanted: list[str]) -> Features:
    selected = _selected_streams(arguments, wanted)
    parts, empty = [], []
    for location, store, name in selected:
        source = store.stream(name)
        n = source.num_embedded
        if n == 0:
            empty.append((f"{location}::{name}", source.num_faces))
        else:
            parts.append((location, name, source, n))
    if not parts:
        if len(empty) == 1:
            raise ValueError(f"{empty[0][0]} has no embeddings yet ({empty[0][1]} faces); run face analysis first")
        raise ValueError(f"none of the {len(empty)} selected streams has embeddings yet "
                         f"({', '.join(e for e, _ in empty[:3])}{', ...' if len(empty) > 3 else ''}); "
                         "run face analysis first")
    if empty:
        import warnings

        warnings.warn(f"{len(empty)} of {len(selected)} streams have no embeddings yet and are left out "
                      f"(first: {empty[0][0]})", UserWarning, stacklevel=3)
    kinds = {(source.embedding_model, source.embedding_dim) for _, _, source, _ in parts}
    if len(kinds) > 1:
        seen = {}
        for location, name, source, _ in parts:
            seen.setdefault((source.embedding_model, source.embedding_dim), f"{location}::{name}")
        listed = "; ".join(f"{where}: {model!r} ({dim}-D)" for (model, dim), where in seen.items())
        raise ValueError(f"the selected streams hold embeddings of different models or dimensions ({listed}); "
                         "cluster them separately (--stream, or name fewer stores)")
    names, embeddings, labels, extras, sources = [], [], [], [], []
    start = 0
    for location, name, source, n in parts:
        names.append(source.face_ids(0, n))
        embeddings.append(source.read_embeddings(0, n))
        labels.append(source.read_labels(0, n))
        extras.append(_store_extra(source, n) or [{} for _ in range(n)])
        sources.append(FeatureSource(location, name, start, np.arange(n, dtype=np.int64), source.embedding_model))
        start += n
    extra = [record for part in extras for record in part]
    one = sources[0] if len(sources) == 1 else None
    where = dict(store=one.store, stream=one.stream, rows=one.rows) if one else {}
    label = sources[0].name if one else f"{len(sources)} streams of {', '.join(arguments)}"
    features = _make(np.concatenate(names), np.concatenate(embeddings), None,
                     extra if any(extra) else None, label, model=sources[0].model, **where)
    features.sources = sources
    features.stored_labels = np.concatenate(labels).astype(np.int32)
    return features


def _store_extra(source, n: int) -> list[dict[str, Any]] | None:
    """Attributes stored per face, in the seed's record layout (mask at top level, pose as a dict)."""
    names = source.attribute_names
    if not names:
        return None
    records: list[dict[str, Any]] = [{} for _ in range(n)]
    order = sorted(names, key=lambda a: (["age", "gender", "race", "expression", "pose"] + [a]).index(a))
    for name in order:
        rows = min(n, source.num_attribute_rows(name))
        if rows == 0:
            continue
        values = np.round(source.read_attribute(name, 0, rows).astype(np.float64), 2)
        classes = source.attribute_classes(name)
        for i in range(rows):
            if np.isnan(values[i]).any():
                continue
            if values.ndim == 1:
                value: Any = float(values[i])
            else:
                keys = classes or [str(k) for k in range(values.shape[1])]
                value = dict(zip(keys, (float(v) for v in values[i])))
            if name == "mask":
                records[i]["mask"] = value
            else:
                records[i].setdefault("attributes", {})[name] = value
    # The seed's key order: mask, then attributes.
    records = [{k: r[k] for k in ("mask", "attributes") if k in r} for r in records]
    return records if any(records) else None


def validate_embeddings(embeddings: np.ndarray, metric: str, names: np.ndarray | None = None,
                        *, min_samples: int = 1, param: str = "features_path") -> None:
    """Check embeddings before any distance is computed; raise a ValueError that says what is wrong.

    Parameters
    ----------
    embeddings : ndarray, shape (n, D)
    metric : str
        One of :data:`METRICS`; ``cosine`` and ``correlation`` also reject zero
        vectors (their distance is undefined).
    names : ndarray of str, shape (n,), optional
        Used to name the first bad face.
    min_samples : int, default 1
    param : str
        The parameter the embeddings came from, for messages.
    """
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{param}: embeddings must be (n, D) with D >= 1, got shape {x.shape}")
    if len(x) < min_samples:
        raise ValueError(f"{param}: {len(x)} embeddings; at least {min_samples} needed")

    def first(mask: np.ndarray) -> str:
        i = int(np.flatnonzero(mask)[0])
        return repr(str(names[i])) if names is not None else f"row {i}"

    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(f"{param}: {int(bad.sum())} embeddings hold NaN or infinite values (first: {first(bad)})")
    if metric in ("cosine", "correlation"):
        centred = x - x.mean(axis=1, keepdims=True) if metric == "correlation" else x
        zero = ~(np.abs(centred) > 0).any(axis=1)
        if zero.any():
            kind = "constant" if metric == "correlation" else "zero"
            raise ValueError(f"{param}: {int(zero.sum())} embeddings are {kind} vectors, whose {metric} "
                             f"distance is undefined (first: {first(zero)})")


def labelled_embeddings(features: Features, annotations) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings and labels of the faces both ``features`` and ``annotations`` name (annotation order).

    Parameters
    ----------
    features : Features
    annotations : streamface.identify.annotations.Annotations

    Returns
    -------
    x : ndarray of float32, shape (m, D)
    labels : ndarray of int64, shape (m,)
    names : ndarray of str, shape (m,)

    Raises
    ------
    ValueError
        They name no face in common.

    Warns
    -----
    UserWarning
        Some annotated faces have no features (they are left out, as the seed did).
    """
    import warnings

    index = {name: row for row, name in enumerate(features.names.tolist())}
    rows = np.fromiter((index.get(name, -1) for name in annotations.names.tolist()), np.int64,
                       count=len(annotations))
    found = rows >= 0
    if not found.any():
        raise ValueError(f"the annotations and the features ({features.source}) name no face in common "
                         f"(e.g. {annotations.names[:1].tolist()} vs {features.names[:1].tolist()})")
    if not found.all():
        warnings.warn(f"{int((~found).sum())} of {len(annotations)} annotated faces have no features and are "
                      f"left out (first: {annotations.names[~found][0]!r})", UserWarning, stacklevel=3)
    return features.embeddings[rows[found]], annotations.labels[found], annotations.names[found]

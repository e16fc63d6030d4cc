"""A photo stream's known identities (``extract --labels-from-folders``) as ground truth.

``evaluate-clusters`` without an annotations file: the identities recorded from each photo's
sub-folder (:data:`~streamface.ingest.photos.IDENTITY_ATTR`) are written as an annotations
file, and the store's cluster labels are scored against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamface.ingest.photos import IDENTITY_ATTR

__all__ = ["IdentityTruth", "identity_annotations", "store_identities"]


def identity_annotations(stream):
    """The known identities of a photo stream's faces, as annotations (ground truth).

    Parameters
    ----------
    stream : streamface.store.Stream
        Extracted with ``labels_from_folders``: its ``identity`` attribute holds each
        face's sub-folder.

    Returns
    -------
    streamface.identify.annotations.Annotations
        Face ids and identity codes (index into the sorted sub-folder names), for the
        faces with a sub-folder; ``extra`` gives each face's ``identity`` name.

    Raises
    ------
    ValueError
        The stream holds no identities.
    """
    from streamface.identify.annotations import Annotations

    if IDENTITY_ATTR not in stream.attribute_names:
        raise ValueError(f"stream {stream.name!r} holds no known identities; extract its photos "
                         f"with --labels-from-folders (one sub-folder per person)")
    rows = stream.num_attribute_rows(IDENTITY_ATTR)
    codes = stream.read_attribute(IDENTITY_ATTR, 0, rows)
    names = stream.attribute_classes(IDENTITY_ATTR) or []
    known = np.flatnonzero(np.isfinite(codes))
    ids = stream.face_ids(0, rows)[known] if rows else np.empty(0, str)
    labels = codes[known].astype(np.int64)
    return Annotations(ids, labels, extra=[{"identity": names[k]} for k in labels.tolist()])


@dataclass
class IdentityTruth:
    """A photo stream's known identities written as an annotations file, and how the
    store's cluster labels compare with them.

    Parameters
    ----------
    path : Path
        The annotations file written (the seed's format).
    faces : int
        Faces with a known identity.
    identities : int
    bcubed : (float, float, float) or None
        BCubed precision, recall and F of the store's cluster labels against the
        identities, over the faces with both; None when the stream is not clustered.
    """

    path: Path
    faces: int
    identities: int
    bcubed: tuple[float, float, float] | None = None

    def line(self) -> str:
        text = f"ground truth: {self.faces} faces of {self.identities} known identities, wrote {self.path}"
        if self.bcubed is None:
            return text + "; the stream has no cluster labels yet (streamface cluster)"
        p, r, f = self.bcubed
        return text + f"; the store's clusters against them: BCubed precision {p:.3f}, recall {r:.3f}, F {f:.3f}"


def store_identities(features_path: str, stream: str | None, scores_path) -> IdentityTruth:
    """Write the known identities of ``features_path`` (a store's photo stream) as
    ``identities.json`` beside ``scores_path``, and score the stream's clusters on them.

    Raises
    ------
    ValueError
        ``features_path`` is not a store, names no single stream, or the stream holds no
        identities.
    """
    from streamface.identify.annotations import write_annotations
    from streamface.identify.features import split_store_path
    from streamface.evaluate.metrics import bcubed
    from streamface.store import FaceStore, StoreError

    location, named = split_store_path(features_path)
    named = named or stream
    try:
        store = FaceStore.open(location, mode="r")
        if named is None:
            if len(store.streams) != 1:
                raise ValueError(f"{location} holds streams {store.streams}; name one (--stream)")
            named = store.streams[0]
        source = store.stream(named)
    except (StoreError, FileNotFoundError) as exc:
        raise ValueError(f"without ANNOTATIONS, FEATURES must be a store's photo stream: {exc}") from None
    truth = identity_annotations(source)
    path = write_annotations(Path(scores_path).with_name("known_identities.json"), truth)
    scores = None
    labelled = min(source.num_labelled, source.num_faces)
    if labelled:
        label_of = dict(zip(source.face_ids(0, labelled).tolist(), source.read_labels(0, labelled).tolist()))
        both = [(t, label_of[n]) for n, t in zip(truth.names.tolist(), truth.labels.tolist()) if n in label_of]
        if both:
            scores = bcubed([t for t, _ in both], [p for _, p in both])
    return IdentityTruth(Path(path), len(truth.names), len(set(truth.labels.tolist())), scores)

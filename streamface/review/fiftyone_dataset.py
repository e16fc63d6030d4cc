"""The review's FiftyOne dataset: one sample per face, a view per suggested pair, decisions as tags.

Each sample carries ``face_id``, ``cluster`` (int, -1 noise) and ``ground_truth``
(the cluster as a classification, so the App colours faces by cluster), the
``stream`` and ``frame_time`` (UTC) from the face id, the detection ``score``
when known, and when the annotations have them ``yaw``/``pitch``/``roll``,
``mask`` and the most likely ``age``/``gender``/``race``/``expression`` class.
The dataset is persistent and keyed by ``face_id``: syncing again updates the
samples, adds new faces and drops faces no longer annotated, keeping tags.

Decisions in the App are sample tags (select faces, tag them):

===========  ================================================================
``merge``    on any face of the pair: the two clusters are one person
``noisy``    on faces of x, of y or of both: that cluster (or both) is noise
``ignore``   on any face: different people, do not suggest again
``skip``     on any face: no more pairs of cluster x
``stop``     on any face: end the review here
===========  ================================================================

Only the shown pair's faces are read; the tags are removed once the decision is
recorded.
"""

from __future__ import annotations

from datetime import datetime, timezone
from types import ModuleType
from typing import Any

from streamface.identify.annotations import Annotations
from streamface.review.face_images import FaceImages
from streamface.store.names import parse_face_id

__all__ = ["REVIEW_TAGS", "TagConflict", "clear_tags", "pair_view", "sync_dataset", "tag_decision"]

REVIEW_TAGS = ("merge", "noisy", "ignore", "skip", "stop")
_TAG_DECISION = {"merge": "merge", "ignore": "ignore", "skip": "skip_cluster", "stop": "stop"}
_CLASS_ATTRIBUTES = ("age", "gender", "race", "expression")


class TagConflict(ValueError):
    """The pair's faces carry more than one decision tag."""


def _fields(face_id: str, label: int, extra: dict[str, Any] | None, score: float | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"face_id": face_id, "cluster": int(label)}
    try:
        parsed = parse_face_id(face_id)
        fields["stream"] = parsed.stream
        fields["frame_time"] = datetime.fromtimestamp(parsed.time_us / 1e6, tz=timezone.utc)
    except ValueError:
        pass  # a face named otherwise: no stream or time to show
    if score is not None:
        fields["score"] = float(score)
    extra = extra or {}
    if isinstance(extra.get("mask"), (int, float)):
        fields["mask"] = float(extra["mask"])
    attributes = extra.get("attributes") or {}
    pose = attributes.get("pose")
    if isinstance(pose, dict):
        for axis in ("yaw", "pitch", "roll"):
            if isinstance(pose.get(axis), (int, float)):
                fields[axis] = float(pose[axis])
    for name in _CLASS_ATTRIBUTES:
        scores = attributes.get(name)
        if isinstance(scores, dict) and scores:
            fields[name] = str(max(scores, key=lambda k: scores[k]))
    return fields


def sync_dataset(fo: ModuleType, name: str, annotations: Annotations, images: FaceImages):
    """Create or update the persistent dataset ``name`` (see the module docstring).

    Parameters
    ----------
    fo : module
        FiftyOne, from :func:`streamface.review.fiftyone_database.import_fiftyone`.
    name : str
    annotations : Annotations
    images : FaceImages
        Must hold every annotated face (:meth:`FaceImages.require`).

    Returns
    -------
    fiftyone.core.dataset.Dataset
    """
    dataset = fo.load_dataset(name) if fo.dataset_exists(name) else fo.Dataset(name, persistent=True)
    names = annotations.names.tolist()
    samples = []
    for i, (face_id, label) in enumerate(zip(names, annotations.labels.tolist())):
        extra = annotations.extra[i] if annotations.extra is not None else None
        sample = fo.Sample(filepath=str(images.paths[face_id]),
                           ground_truth=fo.Classification(label=str(label)),
                           **_fields(face_id, label, extra, images.scores.get(face_id)))
        samples.append(sample)
    if len(dataset):
        wanted = set(names)
        stale = [sid for sid, fid in zip(dataset.values("id"), dataset.values("face_id")) if fid not in wanted]
        if stale:
            dataset.delete_samples(stale)
    # Keyed by face id so a re-run updates samples in place; tags are the reviewer's, kept.
    dataset.merge_samples(samples, key_field="face_id", omit_fields=["tags"], progress=False)
    dataset.info = {**dataset.info, "streamface": "cluster review"}
    dataset.save()
    return dataset


def pair_view(fo: ModuleType, dataset, x: int, y: int, per_cluster: int = 25):
    """Up to ``per_cluster`` faces of cluster x and of cluster y (first by face id, i.e. time), x first."""
    F = fo.ViewField
    ids: list[str] = []
    for cluster in (x, y):
        ids += dataset.match(F("cluster") == cluster).sort_by("face_id").limit(per_cluster).values("id")
    return dataset.select(ids).sort_by([("cluster", 1), ("face_id", 1)])


def tag_decision(fo: ModuleType, view, x: int, y: int) -> str | None:
    """The decision the pair's faces are tagged with, or None when there is none yet.

    Raises
    ------
    TagConflict
        More than one decision tag on the pair's faces.
    """
    present = [t for t in REVIEW_TAGS if t in view.count_values("tags")]
    if not present:
        return None
    if len(present) > 1:
        raise TagConflict(f"pair {x},{y}: faces are tagged {present}; keep one decision tag")
    tag = present[0]
    if tag != "noisy":
        return _TAG_DECISION[tag]
    clusters = set(view.match_tags("noisy").distinct("cluster"))
    if clusters == {x}:
        return "noisy_x"
    if clusters == {y}:
        return "noisy_y"
    return "noisy_both"


def clear_tags(view) -> None:
    """Remove the decision tags from the faces of ``view`` (other tags are kept)."""
    view.untag_samples(list(REVIEW_TAGS))

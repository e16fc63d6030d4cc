"""Read and write the seed's ``annotations.json`` (cluster labels per face).

The format, exactly as the seed writes it (``json.dump(..., indent=4, ensure_ascii=False)``)::

    {
        "labels": {
            "<face id>": {
                "label": 0,
                "mask": 0.0,
                "attributes": {"age": {...}, "gender": {...}, "race": {...},
                               "expression": {...}, "pose": {"yaw": .., "pitch": .., "roll": ..}}
            },
            ...
        },
        "ignore": ["3,7", ...]
    }

Face ids are file stems (``skynews_frame_20230525100138412614_face_0``); ``-1`` is
noise. ``ignore`` (optional) lists cluster pairs ``"x,y"`` a person has rejected,
so cluster matching does not suggest them again. Everything in a face's record
besides ``label`` is kept as it was read (``Annotations.extra``) and written back
unchanged, so a read-write round trip preserves the seed's attributes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamface.atomic_write import atomic_write

__all__ = ["Annotations", "face_stem", "read_annotations", "write_annotations", "write_json"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def face_stem(name: str) -> str:
    """A face id without its image suffix: ``"x_face_0.png"`` -> ``"x_face_0"``.

    The seed keyed features by file name (``.png``) and annotations by stem; both
    forms refer to the same face everywhere in Streamface.
    """
    lower = name.lower()
    for suffix in _IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass
class Annotations:
    """Cluster labels of faces, in the order of the file.

    Parameters
    ----------
    names : ndarray of str, shape (n,)
        Face ids (stems).
    labels : ndarray of int64, shape (n,)
        Cluster label per face; -1 = noise.
    extra : list of dict, optional
        Per face, the rest of its record (``mask``, ``attributes``, ...), or None
        when there is none. Length n when given.
    ignore : list of str
        Cluster pairs ``"x,y"`` not to suggest again.
    """

    names: np.ndarray
    labels: np.ndarray
    extra: list[dict[str, Any]] | None = None
    ignore: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = np.asarray(self.names, dtype=str).reshape(-1)
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
            raise ValueError(f"labels: expected integers of shape (n,), got {labels.dtype} {labels.shape}")
        self.labels = labels.astype(np.int64)
        if len(self.names) != len(self.labels):
            raise ValueError(f"names and labels differ in length: {len(self.names)} != {len(self.labels)}")
        if self.extra is not None and len(self.extra) != len(self.names):
            raise ValueError(f"extra: expected {len(self.names)} records, got {len(self.extra)}")
        self.ignore = [str(k) for k in self.ignore]

    def __len__(self) -> int:
        return len(self.names)

    def label_of(self) -> dict[str, int]:
        """``{face id: label}``."""
        return dict(zip(self.names.tolist(), self.labels.tolist()))

    def to_json(self) -> dict[str, Any]:
        """The seed's document: ``{"labels": {id: {"label": int, ...extra}}, "ignore"?: [...]}``."""
        records: dict[str, Any] = {}
        for i, (name, label) in enumerate(zip(self.names.tolist(), self.labels.tolist())):
            record: dict[str, Any] = {"label": int(label)}
            if self.extra is not None and self.extra[i]:
                record.update({k: v for k, v in self.extra[i].items() if k != "label"})
            records[name] = record
        doc: dict[str, Any] = {"labels": records}
        if self.ignore:
            doc["ignore"] = list(self.ignore)
        return doc

    @classmethod
    def from_json(cls, doc: Any, *, source: str = "annotations") -> Annotations:
        """Parse the seed's document (see the module docstring); ``source`` names it in errors."""
        if not isinstance(doc, dict) or not isinstance(doc.get("labels"), dict):
            raise ValueError(f"{source}: expected a JSON object with a 'labels' object (the seed's annotations.json)")
        names, labels, extra = [], [], []
        for name, record in doc["labels"].items():
            if isinstance(record, dict):
                value = record.get("label")
                rest = {k: v for k, v in record.items() if k != "label"}
            else:  # a bare label, as some tools write
                value, rest = record, {}
            label = _as_label(value)
            if label is None:
                raise ValueError(f"{source}: face {name!r} has no integer 'label' (got {value!r})")
            names.append(face_stem(str(name)))
            labels.append(label)
            extra.append(rest)
        ignore = doc.get("ignore", []) or []
        if not isinstance(ignore, list):
            raise ValueError(f"{source}: 'ignore' must be a list of \"x,y\" strings")
        return cls(np.array(names, dtype=str), np.array(labels, dtype=np.int64),
                   extra if any(extra) else None, [str(k) for k in ignore])


def _as_label(value: Any) -> int | None:
    """An int label from an int, an integral float or a numeric string (the manual tool wrote strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def read_annotations(path: str | os.PathLike) -> Annotations:
    """Read an ``annotations.json`` (the seed's format, automatic or manual).

    Parameters
    ----------
    path : path
        E.g. ``data/skynews/metadata/annotations_manual.json``.

    Returns
    -------
    Annotations

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not JSON, or not the seed's structure; the message names the file.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fp:
            doc = json.load(fp)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    return Annotations.from_json(doc, source=str(path))


def write_annotations(path: str | os.PathLike, annotations: Annotations) -> Path:
    """Write ``annotations`` in the seed's format (4-space indent, UTF-8), atomically.

    The document goes to a temporary file in the same folder and is renamed into
    place, so a reader never sees half a file. Parent folders are created.

    Returns
    -------
    Path
        The path written.
    """
    return write_json(path, annotations.to_json())


def write_json(path: str | os.PathLike, doc: Any) -> Path:
    """Write any JSON document like the seed (4-space indent, UTF-8), atomically."""
    return atomic_write(path, json.dumps(doc, ensure_ascii=False, indent=4).encode("utf-8"))

"""Face image files and per-face facts for a review: from a folder of crops or from a face store.

A viewer such as the FiftyOne App shows image files, so a store's crops are
exported once, to ``<store>.faces/<stream>/<face id>.png`` beside the store
(files already there are kept: a re-run writes nothing). A folder is used as it
is: ``<face id>.png`` (or ``.jpg``), e.g. the seed's ``data/skynews/faces``.

Per face: the stream and frame capture time (from the face id), and the
detection score (from the store, or from the seed's ``metadata/detections.csv``
beside a ``faces`` folder when present).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamface.identify.annotations import face_stem
from streamface.identify.features import split_store_path

__all__ = ["FaceImages", "face_images"]

_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class FaceImages:
    """Image files of faces and their facts.

    Parameters
    ----------
    paths : dict of str to Path
        Face id -> absolute image path.
    scores : dict of str to float
        Face id -> detection score, for the faces it is known for.
    source : str
        Where the images came from (for messages).
    """

    paths: dict[str, Path]
    scores: dict[str, float]
    source: str

    def require(self, face_ids) -> None:
        """Raise ``ValueError`` naming the first of ``face_ids`` without an image."""
        missing = [f for f in face_ids if f not in self.paths]
        if missing:
            raise ValueError(f"faces_path: {len(missing)} of {len(face_ids)} annotated faces have no image in "
                             f"{self.source}, e.g. {missing[0]!r}")


def _is_store(path: Path) -> bool:
    return (path / "zarr.json").is_file()


def face_images(faces_path: str | os.PathLike, *, progress: bool = False) -> FaceImages:
    """Find (or export once) the face images of ``faces_path``.

    Parameters
    ----------
    faces_path : path
        A folder of ``<face id>.png`` files, or a face store as ``<store>::<stream>``
        (or a store holding one stream).
    progress : bool, default False
        Show a bar while exporting crops.

    Returns
    -------
    FaceImages

    Raises
    ------
    FileNotFoundError
        No such folder or store.
    ValueError
        A store with several streams and none named, or an unknown stream.
    """
    text, stream = split_store_path(faces_path)
    path = Path(text)
    if stream is not None or _is_store(path):
        return _from_store(path, stream, progress)
    if not path.is_dir():
        raise FileNotFoundError(f"faces_path: no such folder or face store {str(path)!r}")
    paths = {face_stem(p.name): p.resolve() for p in sorted(path.iterdir())
             if p.suffix.lower() in _SUFFIXES and p.is_file()}
    return FaceImages(paths, _detection_scores(path.parent / "metadata" / "detections.csv"), str(path))


def _detection_scores(csv_path: Path) -> dict[str, float]:
    """``{face id: confidence}`` from the seed's detections.csv; ``{}`` when absent or unreadable."""
    scores: dict[str, float] = {}
    try:
        with open(csv_path, newline="", encoding="utf-8") as fp:
            for row in csv.DictReader(fp):
                try:
                    scores[face_stem(row["name"])] = float(row["confidence"])
                except (KeyError, TypeError, ValueError):
                    continue
    except OSError:
        return {}
    return scores


def _from_store(path: Path, stream: str | None, progress: bool) -> FaceImages:
    from tqdm import tqdm

    from streamface.store import FaceStore, StoreError
    from streamface.atomic_write import atomic_write
    from streamface.store.export import png_bytes

    try:
        store = FaceStore.open(str(path), mode="r")
    except FileNotFoundError:
        raise FileNotFoundError(f"faces_path: no face store at {str(path)!r}") from None
    except StoreError as exc:
        raise ValueError(f"faces_path: {exc}") from None
    if stream is None:
        if len(store.streams) != 1:
            raise ValueError(f"faces_path: the store {str(path)!r} holds streams {store.streams}; "
                             "name one as '<store>::<stream>'")
        stream = store.streams[0]
    try:
        source = store.stream(stream)
    except StoreError as exc:
        raise ValueError(f"faces_path: {exc}") from None
    folder = path.with_name(path.name + ".faces") / stream
    folder.mkdir(parents=True, exist_ok=True)
    ids = source.face_ids().tolist()
    paths = {face_id: (folder / f"{face_id}.png").resolve() for face_id in ids}
    scores = dict(zip(ids, np.asarray(source.read_faces(columns=("score",)).score, np.float64).tolist()))
    todo = np.flatnonzero([not p.exists() for p in paths.values()])
    batch = 256
    with tqdm(total=len(todo), desc=f"export crops {stream}", unit="face", disable=not progress) as bar:
        for start in range(0, len(todo), batch):
            rows = todo[start:start + batch]
            faces = source.read_faces(int(rows[0]), int(rows[-1]) + 1, columns=("crop",))
            crops = faces.crop_images()
            for row in rows.tolist():
                atomic_write(paths[ids[row]], png_bytes(crops[row - int(rows[0])]), fsync=False)
            bar.update(len(rows))
    return FaceImages(paths, scores, f"{path}::{stream}")

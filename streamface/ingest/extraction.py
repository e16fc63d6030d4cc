"""Stage 2, face extraction (docs/stages.md §2): faces of the stored keyframes into the store.

>>> from streamface.ingest.extraction import FaceExtraction
>>> FaceExtraction(input_dir="data/skynews", output_dir="data/skynews").call()  # doctest: +SKIP

Frames come from ``<input_dir>/streamface.zarr`` (what :class:`StreamCapture` wrote)
or, as the seed did, from ``<input_dir>/frames/<name>_frame_<timestamp>.png|jpg``
(imported into ``<output_dir>/streamface.zarr`` first, bytes unchanged), or from a
folder of photos with any names and formats (``input_dir`` itself, nested folders
included, or its ``frames/`` holding other names; see ``docs/photos.md``). For each
batch of frames: batched detection; the seed's filters (confidence above
``conf_threshold``, relative size above ``size_threshold``); the face crop (square of
``(1 + margin)`` box sides on a frame padded by ``padding``, shrunk to fit
``face_size``) and the aligned crop (5-point similarity warp to ``aligned_size``);
faces whose aligned crop scores a blur of ``blur_threshold`` or less are dropped; the
seed's track matching with the previous two frames. Faces are committed with every
batch, so ``resume`` continues after the last frame that has faces. At the end the
seed's ``faces/``, ``aligned_faces/`` and ``metadata/{detections,matches}.csv`` are
written to ``output_dir``.
"""

from __future__ import annotations

import copy
import io
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from streamface import kernels
from streamface.checks import check_int
from streamface.engine import box_iou, load_detector
from streamface.kernels.quality import SIMILARITY_SIZE
from streamface.ingest.photos import (FALLBACK_ATTR, IDENTITY_ATTR, PHOTO_ATTR, PhotoError, photo_face, photo_files,
                               read_photo, stored_photo_bytes)
from streamface.store import FaceRecords, FaceStore, FrameRecords, NO_MATCH, StoreError
from streamface.store.export import export_seed_layout
from streamface.store.names import parse_capture_time, validate_stream_name
from streamface.store.names import store_path

__all__ = ["ExtractionSummary", "FaceExtraction", "FaceExtractor", "restore_previous", "similarity_image"]

log = logging.getLogger(__name__)

#: The seed's detector names mapped to ours (None: the default detector, YuNet).
DETECTOR_NAMES = {None: None, "yunet": "yunet", "retinaface": "retinaface",
                  "centerface": "centerface", "scrfd": "scrfd"}
_FRAME_FILE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+?)_frame_(?P<time>\d{20})\.(png|jpg|jpeg)$")


@dataclass
class _Previous:
    """What track matching needs of an earlier frame."""

    #: The gray frame at the similarity size (what ``frame_similarity`` compares);
    #: None for a frame without faces, which never matches.
    small: np.ndarray | None
    boxes: np.ndarray
    tracks: np.ndarray


@dataclass
class ExtractionSummary:
    """What an extraction did."""

    store: str
    frames: int = 0
    detected: int = 0
    faces: int = 0
    low_confidence: int = 0
    small: int = 0
    blurred: int = 0
    matched: int = 0
    seconds: float = 0.0
    streams: list = field(default_factory=list)
    #: Photos (frames of a photo folder) processed in this call; 0 for video streams.
    photos: int = 0
    #: Photos whose face was found only on the padded photo.
    padded: int = 0
    #: Photos taken whole as the face (``crops=True``, nothing found even padded).
    fallback: int = 0
    #: Photos left without a face, as ``file`` (or frame) names.
    no_face: list = field(default_factory=list)
    #: Files that could not be read as photos, one message each (file and why).
    unreadable: list = field(default_factory=list)

    def line(self) -> str:
        text = (f"{self.frames} frames, {self.detected} detections, {self.faces} faces kept "
                f"(dropped {self.low_confidence} low confidence, {self.small} small, "
                f"{self.blurred} blurred), {self.matched} matched, {self.seconds:.1f} s")
        if self.photos or self.unreadable:
            text += (f"; photos: {self.photos}, {len(self.no_face)} without a face, "
                     f"{self.padded} found padded, {self.fallback} taken whole as the face, "
                     f"{len(self.unreadable)} unreadable files")
        return text


class FaceExtractor:
    """The per-batch work of extraction, shared by the stage and the fused pipeline.

    Parameters are those of :class:`FaceExtraction`; ``detector`` is a loaded detector.
    Keeps the last two frames for track matching between calls.
    """

    def __init__(self, detector, *, conf_threshold=None, size_threshold=0.002, blur_threshold=25,
                 match_thresholds=(0.75, 0.75), face_size=(256, 256), aligned_size=(128, 128),
                 padding=0.5, margin=1.0, threads=1, crops=False):
        self.detector = detector
        self.crops = bool(crops)
        self.conf_threshold = conf_threshold
        self.size_threshold = float(size_threshold)
        self.blur_threshold = float(blur_threshold)
        self.match_thresholds = tuple(float(t) for t in match_thresholds)
        self.face_size = tuple(face_size)
        self.aligned_size = int(aligned_size[0])
        self.padding = float(padding)
        self.margin = float(margin)
        self.threads = threads
        self.previous: list[_Previous] = []
        self.summary = ExtractionSummary(store="")

    def for_stream(self) -> FaceExtractor:
        """A copy for another stream: the same detector and parameters, its own track
        memory and counters (``ingest`` loads the detector once for all its streams)."""
        twin = copy.copy(self)
        twin.previous, twin.summary = [], ExtractionSummary(store="")
        return twin

    def process(self, frames: list[np.ndarray], first_row: int,
                similarity_images: list[np.ndarray] | None = None) -> FaceRecords:
        """Faces of RGB ``frames``; ``FaceRecords.frame`` counts within the batch.

        ``first_row`` is the faces-table row the first face will get (track ids are rows).
        ``similarity_images``, one per frame, are the frames' gray images at the
        similarity size when the caller has them already (keyframe selection made them:
        ``Candidate.small``); those missing (None) are made here for frames with faces.
        """
        return self.process_detections(frames, self.detector.detect(frames), first_row,
                                       similarity_images)

    def process_photos(self, frames: list[np.ndarray], first_row: int) -> tuple[FaceRecords, np.ndarray]:
        """Faces of photos (RGB ``frames``): :meth:`process` for pictures that are no sequence.

        A photo where the batched pass finds nothing is detected again padded onto a
        canvas twice its size; with ``crops`` it is then, if still nothing is found,
        taken whole as the face (:func:`streamface.ingest.photos.photo_face`). Fallback faces
        skip the confidence and blur rules (the user said the photo is a face). Photos
        are never track-matched: neighbours in a folder are not consecutive frames.

        Returns
        -------
        faces : FaceRecords
            ``frame`` counts within the batch; ``match`` is -1.
        fallback : ndarray of bool, shape (len(faces),)
            Faces that are whole photos.
        """
        detections = self.detector.detect(frames)
        whole = np.zeros(len(frames), bool)
        for i, (rgb, det) in enumerate(zip(frames, detections)):
            if len(det):
                continue
            found = photo_face(self.detector, rgb, crops=self.crops, found=det)
            detections[i], whole[i] = found.detections, found.fallback
            self.summary.padded += int(len(found.detections) > 0 and not found.fallback)
            self.summary.fallback += int(found.fallback)
        parts, flags = [], []
        for i, (rgb, det) in enumerate(zip(frames, detections)):
            faces = self._filter(rgb, det, whole=bool(whole[i]))
            n = len(faces["score"])
            self.summary.frames += 1
            self.summary.photos += 1
            self.summary.faces += n
            if n:
                parts.append(FaceRecords(frame=np.full(n, i, np.int64), face=np.arange(n, dtype=np.int32),
                                         match=np.full(n, NO_MATCH, np.int64), **faces))
                flags.append(np.full(n, whole[i]))
        if not parts:
            return _no_faces(self.aligned_size), np.zeros(0, bool)
        return FaceRecords.concat(parts), np.concatenate(flags)

    def process_detections(self, frames: list[np.ndarray], detections: list, first_row: int,
                           similarity_images: list[np.ndarray] | None = None) -> FaceRecords:
        """:meth:`process` after detection: the filters, crops and track matching.

        ``detections`` are the detector's results for ``frames`` (one per frame), so
        one detector call can serve the frames of several streams, each stream keeping
        its own extractor (its own track memory).
        """
        parts = []
        row = first_row
        for i, (rgb, det) in enumerate(zip(frames, detections)):
            faces = self._filter(rgb, det)
            n = len(faces["score"])
            # Track id of a face: the row of the first face of its track, so every face
            # carries one and matched faces share it (the export pairs consecutive ones).
            tracks = np.arange(row, row + n, dtype=np.int64)
            # Kept instead of the frame: a comparison then reads two small gray images,
            # and the last two 1080p frames are not held. None for a frame without faces
            # (it never matches).
            small = None
            if n:
                small = similarity_images[i] if similarity_images is not None else None
                if small is None:
                    small = similarity_image(rgb, self.threads)
            earlier = self._match(small, faces["box"])
            if earlier is not None:
                tracks = earlier.tracks.copy()
                self.summary.matched += n
            self.previous = (self.previous + [_Previous(small, faces["box"], tracks)])[-2:]
            self.summary.frames += 1
            self.summary.faces += n
            row += n
            if n:
                parts.append(FaceRecords(frame=np.full(n, i, np.int64), face=np.arange(n, dtype=np.int32),
                                         match=tracks, **faces))
        if not parts:
            return _no_faces(self.aligned_size)
        return FaceRecords.concat(parts)

    def _filter(self, rgb: np.ndarray, det, whole: bool = False) -> dict:
        """The seed's filters; ``whole``: ``det`` is a photo taken whole as the face, kept
        whatever its (low) score and blur."""
        self.summary.detected += len(det)
        height, width = rgb.shape[:2]
        conf = self.conf_threshold
        keep = np.ones(len(det), bool) if conf is None or whole else det.scores > conf
        self.summary.low_confidence += int((~keep).sum())
        big = det.boxes[:, 2] * det.boxes[:, 3] / float(height * width) > self.size_threshold
        self.summary.small += int((keep & ~big).sum())
        keep &= big
        boxes, landmarks, scores = det.boxes[keep], det.landmarks[keep], det.scores[keep]
        n = len(scores)
        aligned = (kernels.align_faces(rgb, np.ascontiguousarray(landmarks, np.float32),
                                       size=self.aligned_size, threads=1) if n
                   else np.zeros((0, self.aligned_size, self.aligned_size, 3), np.uint8))
        blur = np.array([kernels.blur_score(a, resize=None, crop=None, threads=1)
                         for a in aligned], np.float32)
        sharp = (blur > self.blur_threshold) | whole
        self.summary.blurred += int((~sharp).sum())
        boxes, landmarks, scores, aligned, blur = (boxes[sharp], landmarks[sharp], scores[sharp],
                                                   aligned[sharp], blur[sharp])
        crops = kernels.crop_faces(rgb, boxes, margin=self.margin, padding=self.padding,
                                   size=self.face_size, threads=1) if len(boxes) else []
        crop, crop_size = FaceRecords.pack_crops(crops, max(self.face_size))
        return {"score": scores, "box": boxes, "landmarks": landmarks, "crop": crop,
                "crop_size": crop_size, "aligned": aligned, "blur": blur}

    def _match(self, small: np.ndarray | None, boxes: np.ndarray) -> _Previous | None:
        """The seed's rule: the previous (or the one before) frame whose faces line up."""
        if len(boxes) == 0:
            return None
        for earlier in reversed(self.previous):
            if len(earlier.boxes) != len(boxes):
                continue
            similarity = kernels.frame_similarity(small, earlier.small, size=None, threads=self.threads)
            if similarity <= self.match_thresholds[0]:
                continue
            iou = np.diag(box_iou(np.asarray(boxes, np.float32), np.asarray(earlier.boxes, np.float32)))
            if float(iou.mean()) > self.match_thresholds[1]:
                return earlier
        return None


def _no_faces(aligned_size: int) -> FaceRecords:
    return FaceRecords(frame=np.zeros(0, np.int64), face=np.zeros(0, np.int32),
                       score=np.zeros(0, np.float32), box=np.zeros((0, 4), np.float32),
                       landmarks=np.zeros((0, 5, 2), np.float32),
                       crop=np.zeros((0, 1, 1, 3), np.uint8), crop_size=np.zeros((0, 2), np.int32),
                       aligned=np.zeros((0, aligned_size, aligned_size, 3), np.uint8),
                       blur=np.zeros(0, np.float32), match=np.zeros(0, np.int64))


def decode_image(blob: bytes) -> np.ndarray:
    """An encoded frame (JPEG/PNG bytes) as RGB uint8."""
    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert("RGB"))


class FaceExtraction:
    """Detect, filter, crop, align and match faces of stored frames (seed parameters).

    Parameters
    ----------
    input_dir : path
        Holds ``streamface.zarr`` or the seed's ``frames/`` folder.
    output_dir : path
        Gets ``streamface.zarr`` (when reading a ``frames/`` folder), ``faces/``,
        ``aligned_faces/`` and ``metadata/``.
    detection : str or None, default None
        ``"yunet"`` (None), ``"retinaface"``, ``"centerface"`` (after ``streamface models
        fetch``), ``"scrfd"``.
    batch_size : int, default 32
        Frames per detection batch (and per commit).
    conf_threshold : float or None, default None
        Keep faces scoring above this; None uses the detector's own threshold
        (YuNet 0.86; the seed's 0.95 was on RetinaFace's scale).
    size_threshold : float, default 0.002
        Keep faces whose box covers more than this fraction of the frame: 64 px faces at
        1080p, 43 px at 720p. The seed's 0.005 (102 px at 1080p, 68 px at 720p) dropped
        people in the wide shots of TV footage that YuNet finds and SFace embeds well: on
        tv/fotb it lost 3 of 52 named faces (46-50 px) and capped clustering at BCubed F
        0.945; at 0.002 they are kept, clustered without a wrong merge (F 0.982), and
        skynews scores the same (docs/clustering.md).
    blur_threshold, match_thresholds, face_size, aligned_size, padding, margin
        The seed's meaning and defaults.
    resume : bool, default True
        Continue after the last frame that has stored faces; False refuses a
        stream that already has faces.
    log_interval : int, default 100
    name : str or None
        Only this stream of the store (default: all).
    export : bool, default True
        Write the seed's folders and CSVs at the end.
    store : path or None
        Read and write this store instead of ``<input_dir>/streamface.zarr``.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default "auto"
    backend : {"auto", "ort", "tensorrt", "torch"}, default "auto"
        Where and with what the models run (see ``streamface.engine.backends``).
    crops : bool, default False
        The photos of a photo folder are face crops: a photo where nothing is found,
        even padded, is taken whole as the face (recorded in the ``fallback`` attribute).
    labels_from_folders : bool, default False
        Record each photo's sub-folder (relative to the photo folder) as its known
        identity, the ``identity`` attribute (see :func:`identity_annotations`).
    """

    def __init__(self, input_dir, output_dir, detection=None, batch_size=32, conf_threshold=None,
                 size_threshold=0.002, blur_threshold=25, match_thresholds=(0.75, 0.75),
                 face_size=(256, 256), aligned_size=(128, 128), padding=0.5, margin=1.0,
                 resume=True, log_interval=100, *, name=None, export=True, device="auto",
                 backend="auto", threads=1, store=None, crops=False, labels_from_folders=False):
        self.input_dir = input_dir
        self.output_dir = output_dir
        self.detection = detection
        self.batch_size = batch_size
        self.conf_threshold = conf_threshold
        self.size_threshold = size_threshold
        self.blur_threshold = blur_threshold
        self.match_thresholds = match_thresholds
        self.face_size = face_size
        self.aligned_size = aligned_size
        self.padding = padding
        self.margin = margin
        self.resume = resume
        self.log_interval = log_interval
        self.name = name
        self.export = export
        self.device = device
        self.backend = backend
        self.threads = threads
        self.store = store
        self.crops = bool(crops)
        self.labels_from_folders = bool(labels_from_folders)
        self._unreadable: list[str] = []
        self._imported: str | None = None

    def _validate(self) -> None:
        if self.detection not in DETECTOR_NAMES:
            raise ValueError(f"detection must be one of {[k for k in DETECTOR_NAMES if k]} or None, "
                             f"got {self.detection!r}")
        check_int("batch_size", self.batch_size)
        if self.conf_threshold is not None and not 0 <= self.conf_threshold <= 1:
            raise ValueError(f"conf_threshold must lie in [0, 1] or be None, got {self.conf_threshold!r}")
        if len(self.match_thresholds) != 2:
            raise ValueError(f"match_thresholds must be (similarity, iou), got {self.match_thresholds!r}")
        if len(self.aligned_size) != 2 or self.aligned_size[0] != self.aligned_size[1]:
            raise ValueError(f"aligned_size must be a square (s, s), got {self.aligned_size!r}")

    def make_extractor(self) -> FaceExtractor:
        """Check the parameters, load the detector and return the per-batch worker."""
        self._validate()
        options = {}
        if self.conf_threshold is not None:
            options["conf_threshold"] = float(self.conf_threshold)
        detector = load_detector(DETECTOR_NAMES[self.detection], device=self.device, backend=self.backend,
                                 **options)
        return FaceExtractor(detector, conf_threshold=self.conf_threshold,
                             size_threshold=self.size_threshold, blur_threshold=self.blur_threshold,
                             match_thresholds=self.match_thresholds, face_size=self.face_size,
                             aligned_size=self.aligned_size, padding=self.padding,
                             margin=self.margin, threads=self.threads, crops=self.crops)

    def call(self) -> ExtractionSummary:
        """Extract the faces of every frame not processed yet; return the summary."""
        started = time.monotonic()
        extractor = self.make_extractor()
        store = self._open_store()
        # A photo folder imported into a store with other streams: only its stream.
        names = [self.name or self._imported] if (self.name or self._imported) else store.streams
        for name in names:
            extractor.previous = []
            self._extract_stream(store, name, extractor)
            extractor.summary.streams.append(name)
            if self.export:
                export_seed_layout(store.stream(name), self.output_dir, progress=False)
        summary = extractor.summary
        summary.unreadable = list(self._unreadable)
        summary.store = str(store.location)
        summary.seconds = time.monotonic() - started
        return summary

    def _open_store(self) -> FaceStore:
        """The store to work on; frames of a seed ``frames/`` folder are imported into it first.

        Frames already in the store (same stream and capture time) are not imported
        again, so a folder the export wrote from this very store adds nothing.
        """
        self._unreadable, self._imported = [], None
        if self.store is not None and self.input_dir is None:
            return FaceStore.open(self.store, mode="r+")
        source = store_path(self.input_dir)
        folder = Path(self.input_dir) / "frames"
        files = sorted(p for p in folder.glob("*") if _FRAME_FILE.match(p.name)) if folder.is_dir() else []
        photos_root = None
        if not files and not source.exists():
            # A user's own folder: <input_dir>/frames/ with other names, else input_dir itself.
            photos_root = folder if folder.is_dir() and photo_files(folder) else Path(self.input_dir)
            if not Path(self.input_dir).is_dir() or not photo_files(photos_root):
                raise StoreError(f"{self.input_dir}: neither a store ({source.name}), nor frames "
                                 f"(frames/<name>_frame_<timestamp>.png|jpg), nor a folder of photos "
                                 f"to extract faces from")
        if self.store is not None:
            store = FaceStore.open(self.store, mode="a")
        elif source.exists():
            store = FaceStore.open(source, mode="r+")
        else:
            store = FaceStore.open(store_path(self.output_dir), mode="a")
        if files:
            self._import_frames(store, files)
        if photos_root is not None:
            self._imported = self._import_photos(store, photos_root)
        return store

    def _photo_stream_name(self, root: Path) -> str:
        if self.name:
            return self.name
        folder = Path(self.input_dir).resolve()
        text = re.sub(r"[^A-Za-z0-9._-]+", "_", folder.name).strip("._") or "photos"
        return validate_stream_name(text)

    def _import_photos(self, store: FaceStore, root: Path) -> str:
        """The photos under ``root`` into a stream, one frame each, in path order.

        Files already imported (by their path relative to ``root``, kept in the
        ``photo`` attribute's classes) are skipped, so a second call adds only new
        files. A file that is not a readable photo is logged in one line, listed in
        the summary and skipped; the others are imported.
        """
        name = self._photo_stream_name(root)
        with store.writer(name, create=True, aligned_size=self.aligned_size[0],
                          crop_size=max(self.face_size), flush_rows=0) as writer:
            known = (writer.attribute_classes(PHOTO_ATTR) or []) if PHOTO_ATTR in writer.attribute_names else []
            if writer.num_frames != len(known):
                raise StoreError(f"stream {name!r} holds {writer.num_frames} frames but a list of "
                                 f"{len(known)} photos; import this folder into a new stream (--stream)")
            seen = set(known)
            # Not the seed folders an export of this stage wrote beside the photos.
            out = Path(self.output_dir) if self.output_dir is not None else None
            exported = [out / d for d in ("frames", "faces", "aligned_faces", "labeled_faces")] if out else []
            todo = [p for p in photo_files(root, skip=exported) if p.relative_to(root).as_posix() not in seen]
            for start in range(0, len(todo), 64):
                chunk, blobs, sizes = [], [], []
                for path in todo[start:start + 64]:
                    try:
                        rgb = read_photo(path)
                    except PhotoError as exc:
                        # Reported by the summary (and by the CLI, one line each).
                        log.info("skipped %s", exc)
                        self._unreadable.append(str(exc))
                        continue
                    chunk.append(path.relative_to(root).as_posix())
                    blobs.append(stored_photo_bytes(path, rgb))
                    sizes.append(rgb.shape[:2])
                if not chunk:
                    continue
                # No capture time: a photo's frame time is its ordinal in the stream (in
                # microseconds since the epoch), unique and increasing; the file is its name.
                order = np.arange(len(known), len(known) + len(chunk), dtype=np.int64)
                writer.append(FrameRecords(time_us=order, source_index=order,
                                           width=np.array([w for _, w in sizes], np.int32),
                                           height=np.array([h for h, _ in sizes], np.int32), images=blobs))
                writer.flush()
                known += chunk
                self._write_photo_columns(writer, known)
        return name

    def _write_photo_columns(self, writer, files: list[str]) -> None:
        """The per-face ``photo`` (and ``identity``) attributes from row 0, the file list as
        the classes: a face's photo is its frame."""
        frames = writer.read_faces(columns=("frame",)).frame if writer.num_faces else np.zeros(0, np.int64)
        writer.write_attribute(PHOTO_ATTR, 0, frames.astype(np.float32), classes=files)
        if self.labels_from_folders:
            folders = [f.rsplit("/", 1)[0] if "/" in f else "" for f in files]
            names = sorted(set(folders) - {""})
            code = {n: i for i, n in enumerate(names)}
            per_frame = np.array([code.get(f, np.nan) for f in folders], np.float32)
            writer.write_attribute(IDENTITY_ATTR, 0, per_frame[frames] if len(frames) else per_frame[:0],
                                   classes=names)

    def _import_frames(self, store: FaceStore, files: list[Path]) -> None:
        """Frames of the seed's ``frames/`` folder into the store (bytes kept as they are)."""
        by_stream: dict[str, list[tuple[int, Path]]] = {}
        for p in files:
            m = _FRAME_FILE.match(p.name)
            by_stream.setdefault(m["name"], []).append((parse_capture_time(m["time"]), p))
        for name, items in by_stream.items():
            items.sort()
            with store.writer(name, create=True, aligned_size=self.aligned_size[0],
                              crop_size=max(self.face_size), flush_rows=0) as writer:
                span = writer.capture_time_span()
                items = [(t, p) for t, p in items if span is None or t > span[1]]
                for start in range(0, len(items), 64):
                    chunk = items[start:start + 64]
                    blobs = [p.read_bytes() for _, p in chunk]
                    sizes = [Image.open(p).size for _, p in chunk]
                    writer.append(FrameRecords(
                        time_us=np.array([t for t, _ in chunk], np.int64),
                        width=np.array([w for w, _ in sizes], np.int32),
                        height=np.array([h for _, h in sizes], np.int32), images=blobs))

    def _extract_stream(self, store: FaceStore, name: str, extractor: FaceExtractor) -> None:
        with store.writer(name, flush_rows=0) as writer:
            if writer.config.aligned_size != extractor.aligned_size:
                raise StoreError(f"stream {name!r} stores {writer.config.aligned_size}px aligned faces, "
                                 f"not {extractor.aligned_size}")
            start = 0
            if writer.num_faces:
                if not self.resume:
                    raise StoreError(f"stream {name!r} already has {writer.num_faces} faces; "
                                     f"pass resume=True to continue, or use a new output_dir")
                last = writer.read_faces(writer.num_faces - 1, columns=("frame",)).frame
                start = int(last[0]) + 1
                extractor.previous = restore_previous(writer, start)
            total = writer.num_frames
            if start < total and not writer.has_images:
                raise StoreError(f"stream {name!r} kept no frame images; faces must be extracted "
                                 f"while capturing (streamface run)")
            files = writer.attribute_classes(PHOTO_ATTR) if PHOTO_ATTR in writer.attribute_names else None
            for lo in range(start, total, self.batch_size):
                hi = min(total, lo + self.batch_size)
                frames = [decode_image(b) for b in writer.read_frame_images(lo, hi)]
                if files is None:
                    faces = extractor.process(frames, writer.num_faces)
                else:
                    faces, whole = extractor.process_photos(frames, writer.num_faces)
                    for i in sorted(set(range(hi - lo)) - set(faces.frame.tolist())):
                        extractor.summary.no_face.append(files[lo + i])
                        log.info("%s: no face in %s", name, files[lo + i])
                if len(faces):
                    first = writer.num_faces
                    writer.append_faces(_rebase(faces, lo))
                    writer.flush()
                    if files is not None:
                        _append_flags(writer, FALLBACK_ATTR, first, whole)
                if self.log_interval and (hi // self.log_interval) > (lo // self.log_interval):
                    log.info("%s: %d/%d frames, %d faces", name, hi, total, writer.num_faces)
            if files is not None:
                self._write_photo_columns(writer, files)


def _append_flags(writer, name: str, start: int, flags: np.ndarray) -> None:
    """Flags of faces ``[start, start + n)`` as attribute ``name`` (1.0 / 0.0); rows a
    killed run left without a value read NaN (unknown) instead of leaving a gap."""
    have = writer.num_attribute_rows(name) if name in writer.attribute_names else 0
    values = np.concatenate([np.full(max(0, start - have), np.nan, np.float32),
                             flags.astype(np.float32)])
    writer.write_attribute(name, min(have, start), values)


def _rebase(faces: FaceRecords, first_frame: int) -> FaceRecords:
    faces.frame = faces.frame + first_frame
    return faces


def similarity_image(rgb: np.ndarray, threads: int | None = 1) -> np.ndarray:
    """The gray frame at the similarity size that track matching compares (nearest resize,
    then gray: the same pixels as ``frame_similarity``'s gray-then-resize)."""
    small = kernels.resize_nearest(rgb, SIMILARITY_SIZE, threads=threads)
    return kernels.gray(small, threads=threads)


def restore_previous(writer, start: int) -> list[_Previous]:
    """Rebuild the last two frames before ``start`` for track matching after a resume."""
    previous = []
    faces = writer.read_faces(columns=("frame", "box", "match"))
    for index in range(max(0, start - 2), start):
        blob = writer.read_frame_images(index, index + 1)[0]
        if not blob:
            continue
        mine = faces.frame == index
        rows = np.flatnonzero(mine)
        tracks = np.where(faces.match[mine] != NO_MATCH, faces.match[mine], rows)  # older stores
        small = similarity_image(decode_image(blob)) if mine.any() else None
        previous.append(_Previous(small, faces.box[mine], tracks.astype(np.int64)))
    return previous

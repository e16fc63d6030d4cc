"""One batch of a stream as one store commit, shared by ``run`` and ``ingest``.

A batch is the kept frames, the faces found in them, and (with an analyzer) the
faces' embeddings and attributes. :class:`BatchCommit` is the job a
:class:`~streamface.ingest.commit_queue.CommitQueue` runs on the stream's commit thread:
frames and faces go in as one commit, then the embeddings and attributes, then the
online identities. Two batches of the same stream merge into one commit
(:meth:`BatchCommit.merge`): a commit costs about the same for one frame as for ten,
so batches that queue up behind a slow store are written together.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np

from streamface.identify.online_index import OnlineIndex
from streamface.store import FaceRecords
from streamface.ingest.capture import frame_records

__all__ = ["BatchCommit"]


@dataclass
class BatchCommit:
    """A batch of one stream, committed by calling it with the stream's writer.

    Parameters
    ----------
    analyzer : FaceAnalyzer or None
        Writes ``embeddings`` and ``attributes``; None when the run does no analysis.
    capture : StreamCapture
        Gives the frame image format and JPEG quality.
    candidates : list of Candidate
        The kept frames, in decode order.
    faces : FaceRecords
        Their faces; ``faces.frame`` counts within ``candidates``.
    start : int
        Row of the first face in the stream's faces table.
    embeddings : numpy.ndarray or None
        ``(len(faces), D)`` float32; None without an analyzer.
    attributes : dict
        Attribute name -> (values, classes), as ``FaceAnalyzer.describe`` returns them.
    online : OnlineIndex or None
        Labels the new faces after their embeddings are stored.
    on_committed : callable or None
        Called with the batch once it is stored (e.g. to count faces and latency).
    """

    analyzer: object
    capture: object
    candidates: list
    faces: FaceRecords
    start: int
    embeddings: np.ndarray | None
    attributes: dict
    online: OnlineIndex | None = None
    on_committed: Callable[[BatchCommit], None] | None = None

    def merge(self, later: BatchCommit) -> BatchCommit | None:
        """This batch and ``later`` (of the same stream) as one commit; None if they cannot be."""
        if not isinstance(later, BatchCommit) or (self.embeddings is None) != (later.embeddings is None):
            return None
        shifted = copy.copy(later.faces)
        shifted.frame = later.faces.frame + len(self.candidates)
        faces = FaceRecords.concat([f for f in (self.faces, shifted) if len(f)]) if len(shifted) else self.faces
        embeddings = (None if self.embeddings is None else
                      np.concatenate([e for e in (self.embeddings, later.embeddings) if len(e)]
                                     or [self.embeddings]))
        attributes = {name: (np.concatenate([values, later.attributes[name][0]]), classes)
                      for name, (values, classes) in self.attributes.items()
                      if name in later.attributes}
        if not len(self.faces):
            attributes = later.attributes
        elif not len(later.faces):
            attributes = self.attributes
        elif attributes.keys() != later.attributes.keys():
            return None
        return BatchCommit(self.analyzer, self.capture, self.candidates + later.candidates,
                           faces, self.start, embeddings, attributes, self.online, self.on_committed)

    def __call__(self, writer) -> None:
        # The frames and their faces in one commit, then the embeddings and attributes.
        frames = frame_records(self.candidates, self.capture.image_format, self.capture.jpeg_quality)
        writer.append(frames, self.faces)
        writer.flush()
        if self.analyzer is not None and self.embeddings is not None:
            self.analyzer.write(writer, self.start, self.embeddings, self.attributes)
            if self.online is not None:
                self.online.label_new_faces(writer)
        if self.on_committed is not None:
            self.on_committed(self)

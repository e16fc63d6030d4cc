"""C (Cython) kernels: the per-frame and per-face pixel work of Streamface.

Every kernel releases the GIL, accepts C-contiguous uint8 input and raises
``ValueError`` with a clear message for a wrong dtype, shape or empty input.
Scores keep the seed's semantics (see docs/stages.md §1-2), so the seed's
thresholds (frame blur 50, face blur 25, similarity 0.9, emptiness 0.95) keep
their meaning.
"""

from streamface.kernels.geometry import ARCFACE_TEMPLATE, align_faces, crop_faces
from streamface.kernels.preprocess import Letterbox, preprocess_batch
from streamface.kernels.quality import blur_score, emptiness, frame_similarity, gray, resize_nearest

__all__ = [
    "ARCFACE_TEMPLATE",
    "Letterbox",
    "align_faces",
    "blur_score",
    "crop_faces",
    "emptiness",
    "frame_similarity",
    "gray",
    "preprocess_batch",
    "resize_nearest",
]

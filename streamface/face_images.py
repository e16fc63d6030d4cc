"""The seed-era name of :mod:`streamface.review.face_images` (moved there; this name stays importable).

``import streamface.face_images`` gives the same module object.
"""

import sys

from streamface.review import face_images

sys.modules[__name__] = face_images

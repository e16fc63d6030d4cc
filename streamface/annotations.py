"""The seed-era name of :mod:`streamface.identify.annotations` (moved there; this name stays importable).

``import streamface.annotations`` gives the same module object.
"""

import sys

from streamface.identify import annotations

sys.modules[__name__] = annotations

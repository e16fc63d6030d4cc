"""The seed-era name of :mod:`streamface.identify.online_index` (moved there; this name stays importable).

``import streamface.online_index`` gives the same module object.
"""

import sys

from streamface.identify import online_index

sys.modules[__name__] = online_index

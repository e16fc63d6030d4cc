"""The C core of the Hierarchical Retrieval Index: the tree held in flat arrays.

:class:`HRICore` (``kernels/_hri.pyx``) does the inserts and searches with the GIL released;
:class:`streamface.identify.hri.HierarchicalRetrievalIndex` is the API over it, which checks every
argument before the core sees it (the core trusts its caller, as the other kernels' loops
trust their typed wrappers), saves and loads the tree, and documents the modes.
"""

from streamface.kernels._hri import HRICore, default_threads

__all__ = ["HRICore", "default_threads"]

"""The seed-era name of :mod:`streamface.identify.clustering` (moved there; this name stays importable).

The package and each of its modules are the same objects under both names.
"""

import importlib
import sys

from streamface.identify import clustering

for submodule in ('cluster_distances', 'constraints', 'hac', 'knn', 'merging', 'neighbors', 'synthetic', 'thresholds'):
    sys.modules[f"{__name__}.{submodule}"] = importlib.import_module(f"streamface.identify.clustering.{submodule}")
sys.modules[__name__] = clustering

"""Runtime of Streamface: decoding, sources, inference backends and model wrappers.

Imports ``streamface.kernels`` only; knows nothing of stages, stores or the CLI.
"""

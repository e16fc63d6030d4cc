"""Zarr v3 face store (see DESIGN.md, "The store")."""

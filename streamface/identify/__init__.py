"""Identities: features, tracks, clustering, cluster matching and the retrieval index."""

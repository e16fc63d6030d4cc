"""What ``streamface cluster`` says it did, in words a user reads without the seed's vocabulary.

Clustering runs in two steps: the embeddings are grouped into clusters of similar
faces, then clusters that share a track (the same face followed across nearby
frames) and are close enough are joined. The summary says both steps plainly.
"""

from __future__ import annotations

__all__ = ["clustering_summary"]


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


def clustering_summary(faces: int, clusters: int, before_merging: int, track_links: int, method: str) -> str:
    """One sentence on a clustering's result.

    Parameters
    ----------
    faces : int
        Faces clustered.
    clusters : int
        Identities at the end.
    before_merging : int
        Clusters of similar faces before the track step.
    track_links : int
        Track-match pairs considered for joining clusters.
    method : str
        ``"hac"`` or ``"knn"``.

    Returns
    -------
    str
        E.g. ``"42 faces -> 9 identities: hac grouped similar faces into 12 clusters;
        8 track links (the same face in nearby frames) joined 3 of them to others"``.
    """
    joined = max(0, before_merging - clusters)
    grouped = f"{method} grouped similar faces into {_plural(before_merging, 'cluster')}"
    if track_links == 0:
        tracks = "no track links (the same face in nearby frames) to join them"
    else:
        what = "none of them" if joined == 0 else f"{joined} of them to others"
        tracks = f"{_plural(track_links, 'track link')} (the same face in nearby frames) joined {what}"
    return f"{_plural(faces, 'face')} -> {_plural(clusters, 'identity', 'identities')}: {grouped}; {tracks}"

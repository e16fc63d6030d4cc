"""``cluster``, ``match-clusters``, ``index build|query``: identities from embeddings (streamface.identify)."""

from __future__ import annotations

import click

from streamface.cli.common import (
    THRESHOLD_NOTE,
    StageErrors,
    check_thresholds,
    error_text,
    executor_for,
    metric_option,
    ray_option,
)

__all__ = ["cluster", "index_group", "match_clusters"]


@click.command("cluster")
@click.argument("features", nargs=-1, required=True, metavar="FEATURES...")
@click.option("--stream", default=None, help="Only this stream of the stores (several: comma-separated) "
              "[default: every stream].")
@click.option("--matches", "matches_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The seed's matches.csv [default: the store's track matches, if any].")
@click.option("--faces-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Face images (<face id>.png) for --copy-faces [default: crops from the store].")
@click.option("--output-dir", type=click.Path(file_okay=False), default=None,
              help="Writes metadata/annotations.json (and, for stores, metadata/identities.json) here "
                   "[default for stores: <name>.identities beside the first store (the rotation base's name "
                   "for rotated stores); required for a .npz or .pkl].")
@click.option("--full", is_flag=True, help="Recluster every face [default: only the faces the collection's "
              "identities.json does not count yet, joined to its identities or made new ones].")
@click.option("--reviewed", type=click.Path(exists=True, dir_okay=False), default=None,
              help="annotations_manual.json from 'annotate': its labels hold for the faces it names, so "
                   "its merges are kept by this and every later incremental run.")
@click.option("--method", type=click.Choice(["hac", "knn"]), default="hac",
              help="hac: the seed's batched clustering; knn: neighbour graph, for millions of faces.")
@metric_option
@click.option("--linkage", type=click.Choice(["single", "complete", "average", "weighted", "centroid", "median",
                                              "ward"]), default="average",
              help="Linkage rule (the seed's: complete).")
@click.option("--matching-threshold", type=click.FloatRange(min=0), default=None,
              help=f"Linkage cut [{THRESHOLD_NOTE}: SFace 0.5; the seed's 0.3 for its ArcFace+FaceNet].")
@click.option("--batch-size", "matching_batchsize", type=click.IntRange(min=1), default=20000,
              help="hac: faces per batch; knn: largest group per linkage (with --max-component).")
@click.option("--merging-threshold", type=click.FloatRange(min=0), default=None,
              help=f"Matched clusters join below this mean distance [{THRESHOLD_NOTE}: SFace 0.6; "
                   "the seed's 0.5].")
@click.option("--model", default=None,
              help="Embedding model whose calibrated thresholds are the defaults [default: the one recorded "
                   "in the store; none recorded or unknown: the seed's values, with a warning].")
@click.option("--neighbors", "n_neighbors", type=click.IntRange(min=1), default=32, help="knn: neighbours per face.")
@click.option("--max-component", type=click.IntRange(min=1), default=5000, help="knn: largest group per linkage.")
@click.option("--copy-faces/--no-copy-faces", default=False, help="Copy faces into labeled_faces/<label>/.")
@click.option("--store-labels/--no-store-labels", default=True, help="Write the labels into the store.")
@ray_option
def cluster(features, stream, matches_path, faces_dir, output_dir, full, reviewed, method, metric, linkage,
            matching_threshold, matching_batchsize, merging_threshold, model, n_neighbors, max_component,
            copy_faces, store_labels, ray_address) -> None:
    """Cluster the faces of FEATURES into one identity set; write annotations.json and the stores' labels.

    FEATURES is one or more of: '<store>::<stream>', a store (all its streams), a glob
    ('news-*.zarr'), the base name of rotated stores (news.zarr for news-2026-11-28.zarr,
    ...), or one .npz with arrays names and embeddings or the seed's features .pkl (a
    pickle: only files you trust). Every stream gets its labels; annotations.json holds
    every face, for match-clusters, evaluate-clusters and annotate. A later run adds the
    new faces to the same identities (ids kept) unless --full.
    """
    from streamface.identify.cluster_summary import clustering_summary
    from streamface.identify.face_clustering import FaceClustering
    from streamface.identify.features import names_stores
    from streamface.identify.identities import collection_folder

    check_thresholds(metric, matching_threshold=matching_threshold, merging_threshold=merging_threshold)
    if output_dir is None and names_stores(features[0]):
        output_dir = collection_folder(features[0])
    paths = features[0] if len(features) == 1 else list(features)
    with StageErrors(), executor_for(ray_address) as executor:
        result = FaceClustering(paths, matches_path, faces_dir, output_dir, metric, linkage, matching_threshold,
                                matching_batchsize, merging_threshold, method=method, stream=stream,
                                copy_faces=copy_faces, write_store=store_labels, n_neighbors=n_neighbors,
                                max_component=max_component, verbose=False, model=model,
                                executor=executor, incremental=not full, reviewed=reviewed).call()
    where = [str(p) for p in (result.annotations_path,) if p is not None]
    if result.store_written:
        where.append("the store's labels")
    sil = "undefined" if result.silhouette is None else f"{result.silhouette:.3f}"
    growth = (f"; {result.new_faces} new faces: {result.joined_faces} joined earlier identities, "
              f"{result.new_identities} new identities" if result.incremental else "")
    summary = clustering_summary(len(result.labels), result.n_clusters, result.clusters_before_merging,
                                 result.matches, method)
    click.echo(f"{summary}; silhouette {sil}, "
               f"{sum(result.seconds.values()):.1f} s{growth}; wrote {' and '.join(where)}"
               + "".join(f"; warning: {note}" for note in result.warnings))


@click.command("match-clusters")
@click.argument("features")
@click.argument("annotations", type=click.Path(exists=True, dir_okay=False))
@click.option("--stream", default=None, help="Stream of a store given without '::<stream>'.")
@click.option("--evals", "evals_path", type=click.Path(dir_okay=False), default="cluster_evals.json",
              help="Where cluster_evals.json is written.")
@metric_option
@click.option("--topk", type=click.IntRange(min=1), default=10000, help="The largest clusters compared.")
@click.option("--min-threshold", type=click.FloatRange(min=0), default=None,
              help=f"A cluster's closest match must be below it [{THRESHOLD_NOTE}: SFace 0.55; the seed's "
                   "0.35 for its ArcFace+FaceNet].")
@click.option("--max-threshold", type=click.FloatRange(min=0), default=None,
              help=f"Pairs up to this distance are listed [{THRESHOLD_NOTE}: SFace 0.65; the seed's 0.5].")
@click.option("--model", default=None,
              help="Embedding model whose calibrated thresholds are the defaults [default: the one recorded "
                   "in the store; none recorded or unknown: the seed's values, with a warning].")
@click.option("--mode", type=click.Choice(["average", "single", "triplet"]), default="average",
              help="Cluster distance: means, closest members, or means and extreme members.")
def match_clusters(features, annotations, stream, evals_path, metric, topk, min_threshold, max_threshold, model,
                   mode) -> None:
    """Suggest cluster pairs of ANNOTATIONS that may be one person; write cluster_evals.json.

    FEATURES is '<store>::<stream>', a store (with --stream), a .npz with arrays
    names and embeddings, or the seed's features .pkl (a pickle: only files you trust).
    """
    from streamface.identify.cluster_matching import ClusterMatching

    check_thresholds(metric, min_threshold=min_threshold, max_threshold=max_threshold)
    with StageErrors():
        stage = ClusterMatching(features, annotations, evals_path, metric, topk, min_threshold, max_threshold,
                                mode, stream=stream, verbose=False, model=model)
        matches = stage.match()
    clusters = len({key.split(",")[0] for key in matches})
    click.echo(f"{len(matches)} suggested pairs for {clusters} clusters ({mode}); wrote {evals_path}"
               + "".join(f"; warning: {note}" for note in stage.warnings))


@click.group("index")
def index_group() -> None:
    """Hierarchical Retrieval Index (HRI): build one per stream, query it."""


def _index_stream(store, stream: str | None) -> str:
    if stream is not None:
        return stream
    names = store.streams
    if len(names) != 1:
        raise click.ClickException(f"the store has {len(names)} streams; choose one with --stream")
    return names[0]


def _store_arguments(func):
    """``[STORE]`` like every other command, or ``--store STORE`` as before: one of them."""
    func = click.option("--store", "store_option", default=None, type=click.Path(exists=True, file_okay=False),
                        help="The store, as STORE (kept for scripts written before STORE).")(func)
    return click.argument("store", required=False, type=click.Path(exists=True, file_okay=False))(func)


def _one_store(store: str | None, store_option: str | None) -> str:
    if store is not None and store_option is not None and store != store_option:
        raise click.UsageError(f"two stores given: {store} and --store {store_option}")
    if store is None and store_option is None:
        raise click.UsageError("give the store: STORE (or --store STORE)")
    return store or store_option


@index_group.command("build")
@_store_arguments
@click.option("--stream", default=None, help="Stream to index [default: the store's only stream].")
@click.option("--threshold", type=click.FloatRange(min=0), required=True,
              help="Largest distance at which a face joins an identity.")
@click.option("--metric", type=click.Choice(["cosine", "euclidean"]), default="cosine")
def index_build(store: str | None, store_option: str | None, stream: str | None, threshold: float,
                metric: str) -> None:
    """Insert a stream's embeddings of STORE in face order, write the labels back, save the index."""
    from streamface.identify.hri import index_path_for_store
    from streamface.identify.stream_index import build_stream_index
    from streamface.store import FaceStore, StoreError

    location = _one_store(store, store_option)
    try:
        store = FaceStore.open(location, mode="a")
        name = _index_stream(store, stream)
        index, _ = build_stream_index(store, name, threshold, metric)
    except (StoreError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    depth = index.depth_stats()
    click.echo(f"{name}: {index.size} faces, {index.num_labels} labels, depth "
               f"{depth['min']}-{depth['max']} (mean {depth['mean']:.1f}); "
               f"saved {index_path_for_store(location, name)}")


@index_group.command("query")
@_store_arguments
@click.option("--face-id", default=None, help="A stored face (its stream is taken from the id).")
@click.option("--image", type=click.Path(exists=True, dir_okay=False), default=None,
              help="An image: its best face is detected (padded onto a larger canvas if need be; the "
                   "whole image when none is found, said on stderr) and embedded first.")
@click.option("--crop", is_flag=True, default=False,
              help="The --image is a face crop: take it whole as the face, without detecting one.")
@click.option("--stream", default=None, help="Stream of an --image query [default: the only one].")
@click.option("-k", "k", type=click.IntRange(min=1), default=1, help="Nearest identities.")
@click.option("--faces", type=click.IntRange(min=0), default=5, help="Nearest faces listed.")
def index_query(store, store_option, face_id, image, crop, stream, k, faces) -> None:
    """Print the nearest identities (label, distance) and faces in STORE of a face id or an image."""
    from streamface.identify.stream_index import query_stream_index
    from streamface.ingest.photos import photo_embedding
    from streamface.store import FaceStore, StoreError, parse_face_id

    location = _one_store(store, store_option)
    if (face_id is None) == (image is None):
        raise click.ClickException("give exactly one of --face-id and --image")
    if crop and image is None:
        raise click.ClickException("--crop applies to an --image query")
    try:
        store = FaceStore.open(location, mode="r")
        if face_id is not None:
            name, vector = parse_face_id(face_id).stream, store.embedding(face_id)
        else:
            name = _index_stream(store, stream)
            vector, whole = photo_embedding(image, store.stream(name).embedding_model, crop=crop)
            if whole and not crop:
                click.echo(f"no face found in {image}; took the whole image as the face", err=True)
        found = query_stream_index(store, name, vector, k=k, faces=faces)
    except (StoreError, ValueError, OSError, KeyError) as exc:
        raise click.ClickException(error_text(exc)) from None
    for label, dist in zip(found["labels"], found["distances"]):
        if label >= 0:
            click.echo(f"label {label}\tdistance {dist:.4f}")
    for fid, label, dist in zip(found["face_ids"], found["face_labels"], found["face_distances"]):
        click.echo(f"  {fid}\tlabel {label}\tdistance {dist:.4f}")

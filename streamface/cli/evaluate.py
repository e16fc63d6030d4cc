"""``evaluate-features``, ``evaluate-clusters``, ``evaluate-annotations``, ``calibrate``: scores and
thresholds from labelled data (streamface.evaluate)."""

from __future__ import annotations

import click

from streamface.cli.common import StageErrors, metric_option

__all__ = ["calibrate", "evaluate_annotations", "evaluate_clusters", "evaluate_features"]


@click.command("evaluate-features")
@click.argument("features")
@click.option("--stream", default=None, help="Stream of a store given without '::<stream>'.")
@click.option("--name", default="dataset", help="Name in titles and the JSON.")
@click.option("--output", type=click.Path(file_okay=False), default=".",
              help="Folder for knn_distances.png, thresholded_distances.png, feature_evaluation.json.")
@metric_option
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
    with StageErrors():
        report = FeatureEvaluation(name, features, metric, max_samples, k, values, output=output, stream=stream,
                                   random_state=random_state, verbose=False).evaluate()
    q = report["distances"]["Minimum"]["quantiles"]
    click.echo(f"{report['samples']} faces, k={report['k']}: nearest-neighbour {metric} distance median "
               f"{q['0.5']:.3f} (5% {q['0.05']:.3f}, 95% {q['0.95']:.3f}); wrote {output}")


@click.command("evaluate-clusters")
@click.argument("features")
@click.argument("annotations", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("--stream", default=None, help="Stream of a store given without '::<stream>'.")
@click.option("--name", default="dataset", help="Name in the figure titles.")
@click.option("--scores", "scores_path", type=click.Path(dir_okay=False), default="cluster_scores.json",
              help="JSON file for the scores.")
@click.option("--plots", "plots_path", type=click.Path(file_okay=False), default=".",
              help="Folder for class_distribution.png and membership_distribution.png.")
@metric_option
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
    with StageErrors():
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


@click.command("evaluate-annotations")
@click.argument("true_annotations", type=click.Path(exists=True, dir_okay=False))
@click.argument("pred_annotations", type=click.Path(exists=True, dir_okay=False))
@click.option("--noise", type=click.Choice(["label", "singletons", "drop"]), default="label",
              help="How a true label of -1 counts: one more class (the seed), one class per face, or left out.")
@click.option("--json", "as_json", is_flag=True, help="Print every score as JSON.")
def evaluate_annotations(true_annotations, pred_annotations, noise, as_json) -> None:
    """Score the labels of PRED_ANNOTATIONS against TRUE_ANNOTATIONS (the seed's report)."""
    import json

    from streamface.evaluate.annotation_evaluation import AnnotationEvaluation, format_report

    with StageErrors():
        scores = AnnotationEvaluation(true_annotations, pred_annotations, noise=noise).scores()
    if as_json:
        click.echo(json.dumps(scores.to_json(), indent=2))
        return
    click.echo(format_report(scores))


@click.command("calibrate")
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
    from streamface.engine import EngineError
    from streamface.evaluate.calibration import calibrate as run_and_report, parse_cuts

    try:
        with StageErrors():
            result = run_and_report(sources, output=output, write=write, home=home, model=model,
                                    detectors=detectors, cuts=parse_cuts(cuts), what=what,
                                    target_recall=target_recall, stream=stream, annotations=annotations,
                                    boxes=boxes, device=device)
    except EngineError as exc:
        raise click.ClickException(str(exc)) from None
    for note in result.notes:
        click.echo(f"note: {note}")
    if result.clustering is not None:
        click.echo(result.clustering.table())
        click.echo(f"chosen for {model}: " + ", ".join(f"{k}={v:g}" for k, v in result.clustering.chosen.items()))
    for d in result.detectors:
        click.echo(d.summary())
    click.echo(f"wrote {', '.join(map(str, result.written))}")
    if result.stored is not None:
        click.echo(f"stored as your defaults for {', '.join(result.entries)} in {result.stored}")

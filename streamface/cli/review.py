"""``annotate``: review suggested cluster pairs in FiftyOne and write the reviewed labels."""

from __future__ import annotations

import click

from streamface.cli.common import StageErrors

__all__ = ["annotate"]


@click.command("annotate")
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
        with StageErrors():
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

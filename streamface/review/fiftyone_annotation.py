"""Stage 8: review suggested cluster pairs in the FiftyOne App and write ``annotations_manual.json`` (docs/stages.md §8).

For each pair ``"x,y"`` of ``cluster_evals.json`` still to review, the App shows
up to 25 faces of each cluster, x's first, and the reviewer answers merge /
noisy x / noisy y / both noisy / ignore / skip cluster / stop (see
:mod:`streamface.review.decisions`) at the terminal, by tagging faces in the App
(:mod:`streamface.review.fiftyone_dataset`), or from a decisions file. Each decision is
appended to ``<new annotations>.decisions.jsonl`` as it is made, so a stopped
review resumes where it was; delete that journal to start over. The output is
written whenever the review ends, stopped or finished: the input's labels with
merges applied (a merged cluster takes the smaller label), noise as -1, and the
ignored pairs added to ``ignore`` so cluster matching does not suggest them again.

The database (a ``mongod`` started on first use and stopped when the process
exits, see :mod:`streamface.review.fiftyone_database`) lives in ``database_dir``, by
default ``fiftyone-db`` beside the output; the dataset ``name`` stays there
between runs.

>>> from streamface.review.fiftyone_annotation import FiftyOneAnnotation
>>> model = FiftyOneAnnotation(
...     name="skynews",
...     faces_path="./data/skynews/faces",
...     evals_path="./data/skynews/metadata/cluster_evals.json",
...     annotations_path="./data/skynews/metadata/annotations.json",
...     new_annotations_path="./data/skynews/metadata/annotations_manual.json",
... )
>>> result = model.annotate()                                        # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from streamface.checks import check_int
from streamface.identify.annotations import read_annotations, write_annotations
from streamface.review.face_images import face_images
from streamface.review.decisions import (
    Decision,
    DecisionJournal,
    ReviewState,
    apply_review,
    file_digest,
    read_decisions_file,
    read_evals,
)

__all__ = ["FiftyOneAnnotation", "ReviewResult", "TERMINAL_KEYS"]

TERMINAL_KEYS = {"m": "merge", "x": "noisy_x", "y": "noisy_y", "b": "noisy_both",
                 "i": "ignore", "s": "skip_cluster", "q": "stop"}
"""Answers at the terminal prompt (Enter = ignore, as in the seed)."""

_DECIDE = ("terminal", "app")


@dataclass
class ReviewResult:
    """How a review ended.

    Parameters
    ----------
    output : Path
        The annotations written.
    journal : Path
        The decisions journal.
    decided : int
        Decisions recorded in this run.
    total_decided : int
        Decisions in the journal, this run's included.
    remaining : int
        Pairs still to review.
    stopped : bool
        Ended before the last pair (stop, no more decisions in the file, or a timeout).
    unused : list of str
        Pairs of the decisions file that were never shown (skipped by earlier decisions).
    """

    output: Path
    journal: Path
    decided: int
    total_decided: int
    remaining: int
    stopped: bool
    unused: list[str] = field(default_factory=list)


class FiftyOneAnnotation:
    """Manual review of suggested cluster pairs (see the module docstring).

    Parameters
    ----------
    name : str
        FiftyOne dataset name, e.g. the stream's.
    faces_path : path
        A folder of ``<face id>.png`` crops, or a face store ``<store>::<stream>``
        (its crops are exported once to ``<store>.faces/<stream>/``).
    evals_path : path
        ``cluster_evals.json`` from cluster matching.
    annotations_path : path
        The labels under review (``annotations.json``).
    new_annotations_path : path
        Where the reviewed labels go (``annotations_manual.json``); must differ from
        ``annotations_path``. The journal is this path + ``.decisions.jsonl``.
    decisions_path : path, optional
        Take decisions from this file (JSON lines ``{"pair": "x,y", "decision": ...}``)
        instead of asking; the review stops at the first pair it has no decision for.
    decide : {"terminal", "app"}, default "terminal"
        Without a decisions file: ask at the terminal, or wait for tags in the App.
    app : bool, default True
        Start the App (False: ``--no-app``, e.g. with a decisions file, or tagging
        from an App started elsewhere).
    port : int, default 5151
    address : str, default "127.0.0.1"
        Where the App listens; only this machine by default.
    database_dir : path, optional
        Default: ``fiftyone-db`` beside ``new_annotations_path``.
    per_cluster : int, default 25
        Faces shown of each cluster.
    poll_interval : float, default 0.5
        Seconds between reads of the App's tags.
    wait_timeout : float, optional
        With ``decide="app"``, stop when no decision is tagged within this many
        seconds of a pair being shown (default: wait for ever).
    echo : callable, default click.echo
        Where progress lines go.
    """

    def __init__(self, name, faces_path, evals_path, annotations_path, new_annotations_path, *,
                 decisions_path=None, decide: str = "terminal", app: bool = True, port: int = 5151,
                 address: str = "127.0.0.1", database_dir=None, per_cluster: int = 25,
                 poll_interval: float = 0.5, wait_timeout: float | None = None,
                 echo: Callable[[str], None] = click.echo) -> None:
        self.name = name
        self.faces_path = faces_path
        self.evals_path = evals_path
        self.annotations_path = annotations_path
        self.new_annotations_path = new_annotations_path
        self.decisions_path = decisions_path
        self.decide = decide
        self.app = app
        self.port = port
        self.address = address
        self.database_dir = database_dir
        self.per_cluster = per_cluster
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.echo = echo

    @property
    def journal_path(self) -> Path:
        out = Path(self.new_annotations_path)
        return out.with_name(out.name + ".decisions.jsonl")

    def _validate(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("name: expected a non-empty dataset name")
        if self.decide not in _DECIDE:
            raise ValueError(f"decide: {self.decide!r}; choose from {', '.join(_DECIDE)}")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueError(f"port: {self.port!r} is not a TCP port (1-65535)")
        check_int("per_cluster", self.per_cluster)
        if self.poll_interval <= 0:
            raise ValueError(f"poll_interval: expected > 0, got {self.poll_interval!r}")
        if self.wait_timeout is not None and self.wait_timeout <= 0:
            raise ValueError(f"wait_timeout: expected > 0 or None, got {self.wait_timeout!r}")
        if Path(self.new_annotations_path).resolve() == Path(self.annotations_path).resolve():
            raise ValueError("new_annotations_path: must differ from annotations_path (the journal refers to "
                             "the labels under review)")

    def annotate(self) -> ReviewResult:
        """Run (or resume) the review and write the reviewed annotations.

        Returns
        -------
        ReviewResult

        Raises
        ------
        FileNotFoundError, ValueError
            Bad input, found before anything is shown or recorded; one line naming it.
        streamface.review.fiftyone_database.FiftyOneMissing
            FiftyOne is not installed (the message names the extra).
        streamface.review.fiftyone_database.DatabaseError
            The database would not start; the journal is untouched.
        streamface.review.fiftyone_database.AppError
            The App would not start (before any pair is shown).
        """
        self._validate()
        matches = read_evals(self.evals_path)
        annotations = read_annotations(self.annotations_path)
        clusters = set(annotations.labels.tolist())
        for pair in matches:
            absent = [c for c in map(int, pair.split(",")) if c not in clusters]
            if absent:
                raise ValueError(f"{self.evals_path}: cluster {absent[0]} of pair {pair!r} has no faces in "
                                 f"{self.annotations_path}; were the evals made from other annotations?")
        journal = DecisionJournal(self.journal_path, file_digest(self.annotations_path))
        done = journal.read()
        planned = self._planned(matches, done)
        images = face_images(self.faces_path)
        images.require(annotations.names.tolist())

        from streamface.review.fiftyone_database import import_fiftyone, port_in_use, shared_server

        if self.app and port_in_use(self.address, self.port):
            raise ValueError(f"port: {self.address}:{self.port} is already in use; choose another with --port")
        database_dir = (Path(self.database_dir) if self.database_dir is not None
                        else Path(self.new_annotations_path).resolve().parent / "fiftyone-db")
        state = ReviewState.replay(done)
        fo = import_fiftyone(shared_server(database_dir).uri)
        from streamface.review.fiftyone_dataset import sync_dataset

        dataset = sync_dataset(fo, self.name, annotations, images)
        self.echo(f"dataset {self.name!r}: {len(dataset)} faces; database {database_dir}")
        session = self._launch(fo, dataset) if self.app else None
        try:
            decided, stopped = self._review(fo, dataset, session, matches, state, journal, planned)
        finally:
            output = write_annotations(self.new_annotations_path, apply_review(annotations, state))
            if session is not None:
                session.close()
        remaining = sum(state.to_show(p) for p in matches)
        unused = [p for p in (planned or {}) if p not in state.decided and not state.to_show(p)]
        return ReviewResult(output, self.journal_path, decided, len(state.decided), remaining,
                            stopped or remaining > 0, unused)

    def _planned(self, matches: dict[str, float], done: list[Decision]) -> dict[str, str] | None:
        """The decisions file as ``{pair: decision}``, checked against the evals and the journal."""
        if self.decisions_path is None:
            return None
        planned: dict[str, str] = {}
        for d in read_decisions_file(self.decisions_path):
            if d.pair not in matches:
                raise ValueError(f"{self.decisions_path}: pair {d.pair!r} is not suggested in {self.evals_path}")
            if planned.get(d.pair, d.decision) != d.decision:
                raise ValueError(f"{self.decisions_path}: pair {d.pair!r} has two decisions")
            planned[d.pair] = d.decision
        recorded = {d.pair: d.decision for d in done}
        for pair, decision in planned.items():
            if decision != "stop" and recorded.get(pair, decision) != decision:
                raise ValueError(f"{self.decisions_path}: pair {pair!r} is {decision!r} but the journal "
                                 f"{self.journal_path} already holds {recorded[pair]!r}; move the journal "
                                 "away to start over")
        return planned

    def _launch(self, fo, dataset):
        import fiftyone.core.service as fos
        import fiftyone.core.session.session as fosession
        import requests

        from streamface.review.fiftyone_database import AppError

        # Start the App's server ourselves and wait until it answers: a session whose
        # first connection attempt fails waits 10 s before its next. Registered where
        # launch_app looks for a server on this port, so closing the session stops it.
        service = fos.ServerService(self.port, address=self.address, do_not_track=True)
        fosession._server_services[self.port] = service
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"http://{self.address}:{self.port}/fiftyone", timeout=1).json()
                break
            except (requests.RequestException, ValueError):
                if time.monotonic() > deadline or service.child.poll() is not None:
                    service.stop()
                    fosession._server_services.pop(self.port, None)
                    raise AppError(f"the FiftyOne App did not start on {self.address}:{self.port}") from None
                time.sleep(0.2)
        session = fo.launch_app(dataset, port=self.port, address=self.address, remote=True, auto=False)
        self.echo(f"FiftyOne App: http://{self.address}:{self.port}/")
        return session

    def _show(self, session, view) -> None:
        # The session's event client connects in a background thread; until then
        # setting the view raises, so retry for as long as the server takes to come up.
        deadline = time.monotonic() + 60
        while True:
            try:
                session.view = view
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _review(self, fo, dataset, session, matches, state: ReviewState, journal: DecisionJournal,
                planned: dict[str, str] | None) -> tuple[int, bool]:
        from streamface.review.fiftyone_dataset import pair_view

        if planned is None and self.decide == "terminal":
            self.echo("answers: " + ", ".join(f"{k} = {v}" for k, v in TERMINAL_KEYS.items())
                      + " (Enter = ignore)")
        elif planned is None:
            self.echo("tag faces in the App: merge, noisy (on x's, y's or both clusters' faces), ignore, "
                      "skip, stop")
        decided = 0
        for index, (pair, dist) in enumerate(matches.items()):
            if not state.to_show(pair):
                continue
            x, y = map(int, pair.split(","))
            view = pair_view(fo, dataset, x, y, self.per_cluster)
            if session is not None:
                # A saved view with its own address, and the session shows that saved view:
                # a browser opened (or reloaded) at any time shows this pair whether it
                # follows its address or the session's state, whichever reaches it last.
                slug = f"pair-{x}-{y}"
                dataset.save_view(slug, view, overwrite=True)
                self._show(session, dataset.load_saved_view(slug))
                self.echo(f"pair {pair}: http://{self.address}:{self.port}/datasets/{dataset.name}?view={slug}")
            decision = self._ask(fo, view, pair, x, y, index, dist, planned)
            if decision is not None and decision != "stop":
                record = Decision(pair, decision)
                journal.append(record)  # durable before anything else happens
                state.apply(record)
                decided += 1
                self.echo(f"{pair}: {decision}")
            if decision is not None and planned is None and self.decide == "app":
                # Tags are read per pair: left in place they would decide x's next pair too.
                from streamface.review.fiftyone_dataset import clear_tags

                clear_tags(view)
            if decision is None or decision == "stop":
                return decided, True
        return decided, False

    def _ask(self, fo, view, pair, x, y, index, dist, planned) -> str | None:
        """This pair's decision; None when there is none to be had (file exhausted, timeout, Ctrl-C)."""
        if planned is not None:
            return planned.get(pair)
        if self.decide == "terminal":
            try:
                key = click.prompt(f"{index}. {pair} @ {dist:.4f}", type=click.Choice(list(TERMINAL_KEYS)),
                                   default="i", show_choices=True, show_default=False)
            except click.Abort:
                return None
            return TERMINAL_KEYS[key]
        from streamface.review.fiftyone_dataset import TagConflict, tag_decision

        self.echo(f"{index}. {pair} @ {dist:.4f}: waiting for a decision tag")
        start = time.monotonic()
        warned = ""
        try:
            while self.wait_timeout is None or time.monotonic() - start < self.wait_timeout:
                try:
                    decision = tag_decision(fo, view, x, y)
                except TagConflict as exc:
                    if str(exc) != warned:
                        self.echo(str(exc))
                        warned = str(exc)
                    decision = None
                if decision is not None:
                    return decision
                time.sleep(self.poll_interval)
        except KeyboardInterrupt:
            return None
        return None

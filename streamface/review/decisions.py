"""Decisions of a manual cluster review, their journal, and the annotations they produce (docs/stages.md §8).

A review walks the suggested cluster pairs of ``cluster_evals.json`` in order and
records one decision per pair shown:

==============  =============================================================
``merge``       y is the same person as x: y's faces take x's label
``noisy_x``     cluster x is noise (its faces become -1)
``noisy_y``     cluster y is noise
``noisy_both``  both are noise
``ignore``      different people: the pair goes to the ``ignore`` list, so
                cluster matching does not suggest it again
``skip_cluster`` no decision for x's remaining pairs (they are not shown)
``stop``        end the review here; nothing is recorded for this pair
==============  =============================================================

As in the seed, a pair is not shown when x was skipped or merged into another
cluster, or when x or y is already noise. Every decision is appended to a
journal (JSON lines) as it is made; replaying the journal gives the same state,
so a stopped review resumes at the first pair without a decision.

Differences from the seed, on purpose: a merged group that contains a noisy
cluster becomes noise as a whole (the seed kept the group's other members under
the noisy cluster's label, a label left with no faces of its own); the journal
records the annotations it was made for, so it cannot be replayed on other labels.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamface.identify.annotations import Annotations

__all__ = ["DECISIONS", "RECORDED", "Decision", "DecisionJournal", "ReviewState", "apply_review",
           "file_digest", "parse_pair", "read_decisions_file", "read_evals"]

RECORDED = ("merge", "noisy_x", "noisy_y", "noisy_both", "ignore", "skip_cluster")
"""Decisions written to the journal."""
DECISIONS = RECORDED + ("stop",)
"""Every answer a reviewer can give for a pair."""

JOURNAL_VERSION = 1


def parse_pair(key: object, source: str = "pair") -> tuple[int, int]:
    """``"9,10"`` -> ``(9, 10)``; ``source`` names the input in the error.

    Raises
    ------
    ValueError
        Not two different non-negative integers separated by a comma.
    """
    parts = str(key).split(",")
    try:
        x, y = (int(p.strip()) for p in parts)
    except ValueError:
        raise ValueError(f"{source}: {key!r} is not a cluster pair \"x,y\"") from None
    if x < 0 or y < 0 or x == y:
        raise ValueError(f"{source}: {key!r} is not a pair of two different clusters >= 0")
    return x, y


def read_evals(path: str | os.PathLike) -> dict[str, float]:
    """The suggested pairs of a ``cluster_evals.json``: ``{"x,y": distance}`` in file order.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not JSON, no ``matches`` object, or a key that is not a pair; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"evals_path: no such file {str(path)!r} (run `streamface match-clusters` first)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("matches"), dict):
        raise ValueError(f"{path}: expected a JSON object with a 'matches' object {{\"x,y\": distance}}")
    matches: dict[str, float] = {}
    for key, dist in doc["matches"].items():
        x, y = parse_pair(key, str(path))
        if isinstance(dist, bool) or not isinstance(dist, (int, float)):
            raise ValueError(f"{path}: distance of pair {key!r} is not a number ({dist!r})")
        matches[f"{x},{y}"] = float(dist)
    return matches


@dataclass(frozen=True)
class Decision:
    """One answer for one pair.

    Parameters
    ----------
    pair : str
        ``"x,y"`` as in ``cluster_evals.json``.
    decision : str
        One of :data:`DECISIONS`.
    """

    pair: str
    decision: str

    def __post_init__(self) -> None:
        x, y = parse_pair(self.pair)
        object.__setattr__(self, "pair", f"{x},{y}")
        if self.decision not in DECISIONS:
            raise ValueError(f"decision {self.decision!r} for pair {self.pair}: choose from {', '.join(DECISIONS)}")

    @property
    def xy(self) -> tuple[int, int]:
        return parse_pair(self.pair)


def _decision_from_json(doc: Any, source: str) -> Decision:
    if not isinstance(doc, dict) or "pair" not in doc or "decision" not in doc:
        raise ValueError(f"{source}: expected {{\"pair\": \"x,y\", \"decision\": ...}}, got {doc!r}")
    try:
        return Decision(str(doc["pair"]), str(doc["decision"]))
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def read_decisions_file(path: str | os.PathLike) -> list[Decision]:
    """Read a decisions file: JSON lines ``{"pair": "x,y", "decision": "merge"}`` (the journal's format).

    Blank lines and lines starting with ``#`` are skipped, so a journal can be
    replayed as it is and a hand-written file can carry comments. ``stop`` ends
    the review at that pair.

    Raises
    ------
    FileNotFoundError, ValueError
        The message names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"decisions: no such file {str(path)!r}")
    decisions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{path}:{number}: not a JSON line") from None
        if isinstance(doc, dict) and "journal" in doc:
            continue  # a journal's header line
        decisions.append(_decision_from_json(doc, f"{path}:{number}"))
    return decisions


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        for block in iter(lambda: fp.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DecisionJournal:
    """Append-only record of a review's decisions, next to its output.

    Line 1 is a header ``{"journal": 1, "annotations_sha256": ...}`` naming the
    annotations the labels refer to; each further line is one decision. A line
    is written with one ``write`` on a file opened for appending and flushed to
    disk before the review goes on, so a crash loses at most the decision being
    written; a torn last line is ignored when read.

    Parameters
    ----------
    path : path
        E.g. ``annotations_manual.json.decisions.jsonl``.
    annotations_sha256 : str
        Digest of the annotations under review (:func:`file_digest`).
    """

    def __init__(self, path: str | os.PathLike, annotations_sha256: str) -> None:
        self.path = Path(path)
        self.annotations_sha256 = annotations_sha256

    def read(self) -> list[Decision]:
        """Decisions recorded so far, in order (``[]`` when there is no journal yet).

        Raises
        ------
        ValueError
            The journal was made for other annotations, or a line in it (other than a torn last one) is bad.
        """
        if not self.path.exists():
            return []
        # The text after the last newline, if any, is an interrupted write: dropped.
        lines = self.path.read_text(encoding="utf-8").split("\n")[:-1]
        decisions = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{self.path}:{number}: not a JSON line; the journal is damaged") from None
            if isinstance(doc, dict) and "journal" in doc:
                if doc.get("annotations_sha256") != self.annotations_sha256:
                    raise ValueError(f"{self.path}: this review journal was made for other annotations; "
                                     "move it away to start a new review")
                continue
            decisions.append(_decision_from_json(doc, f"{self.path}:{number}"))
        return decisions

    def append(self, decision: Decision) -> None:
        """Record ``decision`` durably (one line, fsync'd)."""
        if decision.decision not in RECORDED:
            raise ValueError(f"{decision.decision!r} is not recorded in a journal")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # A torn line from an interrupted write (never a whole decision): drop it
                # so the next line starts clean.
                keep = os.pread(fd, size, 0).rfind(b"\n") + 1
                os.ftruncate(fd, keep)
                size = keep
            text = ""
            if size == 0:
                text = json.dumps({"journal": JOURNAL_VERSION, "annotations_sha256": self.annotations_sha256}) + "\n"
            text += json.dumps({"pair": decision.pair, "decision": decision.decision}) + "\n"
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass
class ReviewState:
    """What the decisions so far imply: merges, noise, skipped clusters and ignored pairs."""

    merges: list[tuple[int, int]] = field(default_factory=list)
    noisy: set[int] = field(default_factory=set)
    skipped: set[int] = field(default_factory=set)
    ignored: list[str] = field(default_factory=list)
    decided: dict[str, str] = field(default_factory=dict)

    @classmethod
    def replay(cls, decisions: Iterable[Decision]) -> ReviewState:
        state = cls()
        for decision in decisions:
            state.apply(decision)
        return state

    def to_show(self, pair: str) -> bool:
        """Whether ``pair`` still needs a decision (the seed's rules, see the module docstring)."""
        x, y = parse_pair(pair)
        return (pair not in self.decided and x not in self.skipped
                and x not in self.noisy and y not in self.noisy)

    def apply(self, decision: Decision) -> None:
        x, y = decision.xy
        kind = decision.decision
        if kind == "stop":
            return
        if kind == "merge":
            self.merges.append((x, y))
            self.skipped.add(y)  # y's own pairs are now x's: the seed stops suggesting them
        if kind in ("noisy_x", "noisy_both"):
            self.noisy.add(x)
        if kind in ("noisy_y", "noisy_both"):
            self.noisy.add(y)
        if kind == "skip_cluster":
            self.skipped.add(x)
        if kind == "ignore" and decision.pair not in self.ignored:
            self.ignored.append(decision.pair)
        self.decided[decision.pair] = kind


def _groups(merges: list[tuple[int, int]]) -> dict[int, int]:
    """``{label: smallest label of its merged group}`` (union-find over the merge pairs)."""
    parent: dict[int, int] = {}

    def root(a: int) -> int:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for x, y in merges:
        rx, ry = root(x), root(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    return {a: root(a) for a in list(parent)}


def apply_review(annotations: Annotations, state: ReviewState) -> Annotations:
    """The reviewed annotations: merged labels, noise as -1, new ignored pairs appended.

    Parameters
    ----------
    annotations : Annotations
        The automatic labels under review (not modified).
    state : ReviewState

    Returns
    -------
    Annotations
        Same faces, order and extra fields; ``ignore`` = the input's list followed by
        the newly ignored pairs (no repeats).
    """
    labels = annotations.labels.copy()
    target = _groups(state.merges)
    noisy_roots = {target.get(a, a) for a in state.noisy}
    mapping: Mapping[int, int] = {a: (-1 if r in noisy_roots else r) for a, r in target.items()}
    mapping = {**mapping, **{a: -1 for a in state.noisy}}
    for old, new in mapping.items():
        labels[annotations.labels == old] = new
    ignore = list(annotations.ignore) + [p for p in state.ignored if p not in annotations.ignore]
    return Annotations(annotations.names.copy(), labels.astype(np.int64),
                       None if annotations.extra is None else [dict(e) for e in annotations.extra], ignore)

"""Stage 8, cluster review: decisions and their journal, the FiftyOne dataset, the App in a browser.

The decision tests need nothing optional; the rest need the annotate extra
(FiftyOne and its mongod) and run against one database server per test session.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from streamface.identify.annotations import Annotations, read_annotations
from streamface.review.decisions import (
    Decision,
    DecisionJournal,
    ReviewState,
    apply_review,
    read_decisions_file,
    read_evals,
)

HAVE_FIFTYONE = importlib.util.find_spec("fiftyone") is not None
needs_fiftyone = pytest.mark.skipif(not HAVE_FIFTYONE,
                                    reason='FiftyOne is not installed (pip install "streamface[annotate]")')

# The seed's human review of its 37-face sample, as decisions on its cluster_evals.json:
# clusters 9-12 are one person, 21 is noise, the other suggestions are different people.
HUMAN_REVIEW = [
    ("9,10", "merge"), ("9,23", "ignore"), ("9,11", "merge"), ("9,12", "merge"), ("9,17", "skip_cluster"),
    ("20,21", "noisy_y"), ("20,22", "ignore"), ("20,23", "ignore"),
]


def write_decisions(path: Path, decisions) -> Path:
    path.write_text("# test decisions\n" + "".join(json.dumps({"pair": p, "decision": d}) + "\n"
                                                    for p, d in decisions))
    return path


# ---- decisions, without FiftyOne ------------------------------------------------------------------

def test_merge_takes_the_smaller_label_and_noise_spreads_to_the_merged_group():
    ann = Annotations(np.array(list("abcdef")), np.array([0, 1, 2, 3, 4, 5]), ignore=["0,5"])
    state = ReviewState.replay([Decision("1,2", "merge"), Decision("0,2", "merge"), Decision("3,4", "merge"),
                                Decision("3,5", "noisy_x"), Decision("0,4", "ignore")])
    out = apply_review(ann, state)
    assert out.labels.tolist() == [0, 0, 0, -1, -1, 5]
    assert out.ignore == ["0,5", "0,4"]
    assert ann.labels.tolist() == [0, 1, 2, 3, 4, 5]  # the input is not modified


def test_pairs_of_skipped_merged_or_noisy_clusters_are_not_shown():
    state = ReviewState.replay([Decision("1,2", "merge"), Decision("3,4", "skip_cluster"),
                                Decision("5,6", "noisy_y")])
    assert not state.to_show("2,7")      # 2 was merged into 1
    assert not state.to_show("3,8")      # cluster 3 skipped
    assert not state.to_show("6,9")      # 6 is noise
    assert not state.to_show("1,2")      # already decided
    assert state.to_show("1,7")


def test_journal_replays_decisions_and_drops_a_torn_last_line(tmp_path):
    journal = DecisionJournal(tmp_path / "j.jsonl", "abc")
    journal.append(Decision("1,2", "merge"))
    journal.append(Decision("3,4", "ignore"))
    with open(journal.path, "a") as fp:
        fp.write('{"pair": "5,6", "deci')  # a write cut short by a crash
    assert journal.read() == [Decision("1,2", "merge"), Decision("3,4", "ignore")]
    journal.append(Decision("5,6", "noisy_x"))
    assert journal.read()[-1] == Decision("5,6", "noisy_x")
    assert all(json.loads(line) for line in journal.path.read_text().splitlines())


def test_journal_of_other_annotations_is_refused(tmp_path):
    DecisionJournal(tmp_path / "j.jsonl", "abc").append(Decision("1,2", "merge"))
    with pytest.raises(ValueError, match="made for other annotations"):
        DecisionJournal(tmp_path / "j.jsonl", "def").read()


def test_stop_is_not_recorded(tmp_path):
    with pytest.raises(ValueError, match="not recorded"):
        DecisionJournal(tmp_path / "j.jsonl", "abc").append(Decision("1,2", "stop"))


@pytest.mark.parametrize("line, message", [
    ('{"pair": "1,2", "decision": "maybe"}', "choose from"),
    ('{"pair": "1,1", "decision": "merge"}', "two different clusters"),
    ("1,2 merge", "not a JSON line"),
])
def test_bad_decisions_file_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "d.jsonl"
    path.write_text('{"pair": "3,4", "decision": "ignore"}\n' + line + "\n")
    with pytest.raises(ValueError, match=message) as info:
        read_decisions_file(path)
    assert f"{path}:2" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"pairs": {}}', "'matches' object"),
    ('{"matches": {"9;10": 0.4}}', "not a cluster pair"),
    ('{"matches": {"9,10": "near"}}', "not a number"),
])
def test_malformed_evals_is_one_line(tmp_path, text, message):
    path = tmp_path / "cluster_evals.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        read_evals(path)
    assert "\n" not in str(info.value)


def test_missing_evals_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="match-clusters"):
        read_evals(tmp_path / "cluster_evals.json")


# ---- the stage, with FiftyOne --------------------------------------------------------------------

@pytest.fixture(scope="session")
def database(tmp_path_factory):
    """One mongod for the whole session; stopped at the end, and checked to be gone."""
    if not HAVE_FIFTYONE:
        pytest.skip('FiftyOne is not installed (pip install "streamface[annotate]")')
    from streamface.review.fiftyone_database import FiftyOneMissing, import_fiftyone, shared_server

    folder = tmp_path_factory.mktemp("fiftyone-db")
    try:
        server = shared_server(folder)
    except FiftyOneMissing as exc:
        pytest.skip(str(exc))
    fo = import_fiftyone(server.uri)
    yield folder, fo
    pid = server.process.pid if server.process is not None else None
    server.stop()
    if pid is not None:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.fixture()
def review(database, skynews, tmp_path):
    """A review of the seed's sample into tmp_path; returns a factory of FiftyOneAnnotation."""
    from streamface.review.fiftyone_annotation import FiftyOneAnnotation

    folder, _ = database
    meta = skynews / "metadata"
    name = f"sky-{tmp_path.name}"

    def make(out: Path | None = None, **kwargs):
        kwargs = {"app": False, "database_dir": folder, "echo": lambda line: None, **kwargs}
        return FiftyOneAnnotation(kwargs.pop("name", name), kwargs.pop("faces_path", skynews / "faces"),
                                  kwargs.pop("evals_path", meta / "cluster_evals.json"),
                                  kwargs.pop("annotations_path", meta / "annotations.json"),
                                  out or tmp_path / "annotations_manual.json", **kwargs)
    return make


@needs_fiftyone
def test_decisions_file_gives_the_expected_manual_annotations(review, skynews, tmp_path):
    result = review(decisions_path=write_decisions(tmp_path / "d.jsonl", HUMAN_REVIEW)).annotate()
    assert (result.decided, result.remaining, result.stopped) == (8, 0, False)
    expected = json.loads((skynews / "metadata" / "annotations.json").read_text())
    for record in expected["labels"].values():
        record["label"] = {10: 9, 11: 9, 12: 9, 21: -1}.get(record["label"], record["label"])
    expected["ignore"] = ["9,23", "20,22", "20,23"]
    assert json.loads(result.output.read_text()) == expected
    # The same grouping as the seed's human annotations_manual.json.
    from analysis_fixtures import same_partition

    human = read_annotations(skynews / "metadata" / "annotations_manual.json").label_of()
    ours = read_annotations(result.output).label_of()
    assert same_partition(np.array([human[k] for k in human]), np.array([ours[k] for k in human]))


@needs_fiftyone
def test_review_stopped_half_way_and_resumed_equals_one_run(review, tmp_path):
    one = review(tmp_path / "one" / "manual.json",
                 decisions_path=write_decisions(tmp_path / "all.jsonl", HUMAN_REVIEW)).annotate()
    half = write_decisions(tmp_path / "half.jsonl", HUMAN_REVIEW[:3] + [("9,12", "stop")])
    first = review(tmp_path / "two" / "manual.json", decisions_path=half).annotate()
    assert (first.decided, first.stopped) == (3, True)
    assert len(DecisionJournal(first.journal, "").path.read_text().splitlines()) == 1 + 3
    second = review(tmp_path / "two" / "manual.json", decisions_path=tmp_path / "all.jsonl").annotate()
    assert (second.decided, second.total_decided, second.stopped) == (5, 8, False)
    assert second.output.read_bytes() == one.output.read_bytes()


@needs_fiftyone
def test_rerun_updates_the_dataset_instead_of_duplicating(review, database, skynews, tmp_path):
    _, fo = database
    empty = write_decisions(tmp_path / "none.jsonl", [])
    review(decisions_path=empty).annotate()
    doc = json.loads((skynews / "metadata" / "annotations.json").read_text())
    first = next(iter(doc["labels"]))
    doc["labels"][first]["label"] = 99
    changed = tmp_path / "annotations.json"
    changed.write_text(json.dumps(doc))
    evals = tmp_path / "evals.json"
    evals.write_text('{"matches": {"0,99": 0.1}}')
    review(tmp_path / "out2.json", annotations_path=changed, evals_path=evals, decisions_path=empty).annotate()
    dataset = fo.load_dataset(f"sky-{tmp_path.name}")
    assert len(dataset) == 37 and len(set(dataset.values("face_id"))) == 37
    sample = dataset.match(fo.ViewField("face_id") == first).first()
    assert sample.cluster == 99 and sample.ground_truth.label == "99"
    assert sample.stream == "skynews" and sample.score > 0.5
    assert isinstance(sample.yaw, float) and sample.gender in ("Male", "Female")


_TAGGER = """
import sys
import fiftyone as fo
from fiftyone import ViewField as F
dataset = fo.load_dataset(sys.argv[1])
for cluster, tag in ((10, "noisy"), (23, "ignore"), (11, "stop")):
    dataset.match(F("cluster") == cluster).tag_samples(tag)
print(dataset.count_sample_tags())
"""


@needs_fiftyone
def test_tags_set_from_another_process_are_read_as_decisions(review, database, skynews, tmp_path):
    _, fo = database
    review(decisions_path=write_decisions(tmp_path / "none.jsonl", [])).annotate()  # builds the dataset
    name = f"sky-{tmp_path.name}"
    # A second process, as the App's server is: tags faces of clusters 10, 23 and 11.
    done = subprocess.run([sys.executable, "-c", _TAGGER, name], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = review(decide="app", poll_interval=0.05, wait_timeout=10).annotate()
    # (9,10): 10 tagged noisy; (9,23): ignore; (9,11): stop.
    assert [json.loads(line) for line in result.journal.read_text().splitlines()[1:]] == [
        {"pair": "9,10", "decision": "noisy_y"}, {"pair": "9,23", "decision": "ignore"}]
    assert result.stopped
    before = read_annotations(skynews / "metadata" / "annotations.json")
    out = read_annotations(result.output)
    assert out.ignore == ["9,23"]
    assert out.labels.tolist() == np.where(before.labels == 10, -1, before.labels).tolist()
    assert fo.load_dataset(name).count_sample_tags() == {}  # decision tags are removed once recorded


@needs_fiftyone
def test_faces_from_a_store_are_exported_once_beside_it(database, tmp_path):
    from streamface.review.fiftyone_annotation import FiftyOneAnnotation
    from streamface.store import FaceStore
    from analysis_fixtures import make_store

    faces = make_store(tmp_path / "s.zarr", np.eye(6, 8, dtype=np.float32))
    ids = FaceStore.open(tmp_path / "s.zarr").stream("cam").face_ids().tolist()
    ann = tmp_path / "annotations.json"
    ann.write_text(json.dumps({"labels": {f: {"label": i // 2} for i, f in enumerate(ids)}}))
    evals = tmp_path / "evals.json"
    evals.write_text('{"matches": {"0,1": 0.2, "1,2": 0.3}}')
    decisions = write_decisions(tmp_path / "d.jsonl", [("0,1", "merge"), ("1,2", "ignore")])
    run = FiftyOneAnnotation("store-review", faces, evals, ann, tmp_path / "manual.json", decisions_path=decisions,
                             app=False, database_dir=database[0], echo=lambda line: None)
    result = run.annotate()
    exported = sorted((tmp_path / "s.zarr.faces" / "cam").glob("*.png"))
    assert [p.stem for p in exported] == sorted(ids)
    mtimes = [p.stat().st_mtime_ns for p in exported]
    run.annotate()
    assert [p.stat().st_mtime_ns for p in exported] == mtimes  # not exported again
    assert read_annotations(result.output).labels.tolist() == [0, 0, 0, 0, 2, 2]
    sample = database[1].load_dataset("store-review").first()
    assert sample.score == pytest.approx(0.99) and sample.stream == "cam"


# ---- bad input: one line each, nothing decided lost ------------------------------------------------

@pytest.fixture()
def decided(review, tmp_path):
    """A review stopped after three decisions: (journal bytes, output bytes)."""
    half = write_decisions(tmp_path / "half.jsonl", HUMAN_REVIEW[:3] + [("9,12", "stop")])
    result = review(decisions_path=half).annotate()
    return result.journal, result.journal.read_bytes(), result.output.read_bytes()


def _bad_inputs(tmp_path, skynews):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "malformed.json").write_text('{"matches": [1, 2]}')
    (bad / "unknown.json").write_text('{"matches": {"9,10": 0.4, "9,77": 0.45}}')
    faces = bad / "faces"
    faces.mkdir()
    for png in sorted((skynews / "faces").glob("*.png"))[:30]:
        shutil.copy(png, faces / png.name)
    return {
        "missing evals": ({"evals_path": bad / "nope.json"}, "no such file"),
        "malformed evals": ({"evals_path": bad / "malformed.json"}, "'matches' object"),
        "label not annotated": ({"evals_path": bad / "unknown.json"}, "cluster 77 of pair '9,77' has no faces"),
        "faces missing": ({"faces_path": faces}, "7 of 37 annotated faces have no image"),
        "no faces folder": ({"faces_path": bad / "nowhere"}, "no such folder"),
    }


@needs_fiftyone
@pytest.mark.parametrize("case", ["missing evals", "malformed evals", "label not annotated", "faces missing",
                                  "no faces folder"])
def test_bad_input_is_one_line_and_keeps_decisions(review, decided, skynews, tmp_path, case):
    journal, journal_bytes, output_bytes = decided
    kwargs, message = _bad_inputs(tmp_path, skynews)[case]
    with pytest.raises((ValueError, FileNotFoundError), match=message) as info:
        review(**kwargs).annotate()
    assert "\n" not in str(info.value)
    assert journal.read_bytes() == journal_bytes
    assert (tmp_path / "annotations_manual.json").read_bytes() == output_bytes


@needs_fiftyone
def test_decisions_file_contradicting_the_journal_is_refused(review, decided, tmp_path):
    journal, journal_bytes, _ = decided
    other = write_decisions(tmp_path / "other.jsonl", [("9,10", "ignore")])
    with pytest.raises(ValueError, match="pair '9,10' is 'ignore' but the journal .* already holds 'merge'"):
        review(decisions_path=other).annotate()
    assert journal.read_bytes() == journal_bytes


@needs_fiftyone
def test_port_in_use_is_one_line(review, decided, tmp_path):
    journal, journal_bytes, _ = decided
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match=f"127.0.0.1:{port} is already in use; choose another with --port"):
            review(app=True, port=port).annotate()
    assert journal.read_bytes() == journal_bytes


@needs_fiftyone
def test_database_that_will_not_start_is_one_line(review, decided, tmp_path):
    from streamface.review.fiftyone_database import DatabaseError

    journal, journal_bytes, output_bytes = decided
    broken = tmp_path / "broken-db"
    broken.mkdir()
    for name in ("storage.bson", "WiredTiger", "WiredTiger.turtle"):
        (broken / name).write_text("not a database")
    with pytest.raises(DatabaseError, match="did not start in .*broken-db.*: Unable to read the storage engine"):
        review(database_dir=broken).annotate()
    assert journal.read_bytes() == journal_bytes
    assert (tmp_path / "annotations_manual.json").read_bytes() == output_bytes


@needs_fiftyone
def test_cli_annotate_reviews_from_a_file_and_fails_in_one_line(database, skynews, tmp_path):
    from streamface.cli import main

    meta = skynews / "metadata"
    args = ["annotate", str(skynews / "faces"), str(meta / "cluster_evals.json"), str(meta / "annotations.json"),
            "-o", str(tmp_path / "manual.json"), "--no-app", "--database-dir", str(database[0]),
            "--name", "cli-review"]
    decisions = write_decisions(tmp_path / "d.jsonl", HUMAN_REVIEW)
    result = CliRunner().invoke(main, args + ["--decisions", str(decisions)])
    assert result.exit_code == 0, result.output
    assert "review finished: 8 decisions this run, 8 in all, 0 pairs left" in result.output
    bad = CliRunner().invoke(main, args[:2] + [str(tmp_path / "none.json")] + args[3:])
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines() == [
        f"Error: evals_path: no such file {str(tmp_path / 'none.json')!r} (run `streamface match-clusters` first)"]


@needs_fiftyone
def test_cli_annotate_asks_at_the_terminal(database, skynews, tmp_path):
    from streamface.cli import main

    meta = skynews / "metadata"
    out = tmp_path / "manual.json"
    args = ["annotate", str(skynews / "faces"), str(meta / "cluster_evals.json"), str(meta / "annotations.json"),
            "-o", str(out), "--no-app", "--database-dir", str(database[0]), "--name", "terminal-review"]
    # merge (9,10), Enter = ignore (9,23), then stop at (9,11).
    result = CliRunner().invoke(main, args, input="m\n\nq\n")
    assert result.exit_code == 0, result.output
    assert "review stopped: 2 decisions this run, 2 in all" in result.output
    assert [json.loads(line)["decision"] for line in Path(f"{out}.decisions.jsonl").read_text().splitlines()[1:]] \
        == ["merge", "ignore"]
    assert read_annotations(out).ignore == ["9,23"]


def test_missing_fiftyone_names_the_extra(tmp_path):
    """In a process where FiftyOne cannot be found, the error says what to install."""
    code = ("import sys, importlib.util; real = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda n, *a: None if n.startswith('fiftyone') else real(n, *a)\n"
            "from streamface.review.fiftyone_database import find_mongod, FiftyOneMissing\n"
            "try:\n    find_mongod()\nexcept FiftyOneMissing as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == 'FiftyOne is not installed; pip install "streamface[annotate]"'


# ---- the App, in a browser ---------------------------------------------------------------------------

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.browser
@pytest.mark.slow
@needs_fiftyone
def test_app_shows_the_first_pair_in_a_browser(review, database, tmp_path, record_property):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no chromium binary (apt-get install chromium)")
    _, fo = database
    port = _free_port()
    lines: list[str] = []
    outcome: dict = {}
    run = review(app=True, port=port, decide="app", poll_interval=0.1, wait_timeout=120, echo=lines.append)

    def annotate():
        try:
            outcome["result"] = run.annotate()
        except BaseException as exc:  # surfaced by the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=annotate, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 90
        while not any("waiting for a decision tag" in line for line in lines):
            assert "error" not in outcome, outcome.get("error")
            assert time.monotonic() < deadline, f"the review did not show a pair: {lines}"
            time.sleep(0.2)
        assert f"FiftyOne App: http://127.0.0.1:{port}/" in lines
        shot = tmp_path / "first_pair.png"
        (pair_url,) = [line.split(": ", 1)[1] for line in lines if line.startswith("pair 9,10: http://")]
        dataset = fo.load_dataset(f"sky-{tmp_path.name}")
        shown = len(dataset.match(fo.ViewField("cluster").is_in([9, 10])))
        # One run of a fresh profile gives both the DOM (after the App's scripts ran,
        # within the virtual time budget) and the screenshot. On a loaded machine the
        # App may still show the whole dataset when the budget ends (the session's view
        # arrives over its event stream): look again with a longer budget.
        for attempt, budget in enumerate((15000, 30000, 60000)):
            browser = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run",
                 f"--user-data-dir={tmp_path / f'profile{attempt}'}", "--window-size=1280,900",
                 f"--virtual-time-budget={budget}", f"--screenshot={shot}", "--dump-dom",
                 pair_url], capture_output=True, text=True, timeout=180)
            dom = browser.stdout
            if dom.count('data-cy="looker"') == shown and dom.count('canvas-loaded="true"') == shown:
                break
        record_property("screenshot", str(shot))
        print(f"screenshot of the first pair: {shot}")
        (tmp_path / "dom.html").write_text(dom)
        assert f"sky-{tmp_path.name}" in dom                           # the review's dataset is open
        assert dom.count('data-cy="looker"') == shown                  # one tile per face of the pair
        assert dom.count('canvas-loaded="true"') == shown              # and each face image drawn
        assert shot.stat().st_size > 10_000
    finally:
        fo.load_dataset(f"sky-{tmp_path.name}").match(fo.ViewField("cluster") == 9).tag_samples("stop")
        thread.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].stopped and outcome["result"].decided == 0
    with socket.socket() as sock:  # the App's server is gone
        assert sock.connect_ex(("127.0.0.1", port)) != 0

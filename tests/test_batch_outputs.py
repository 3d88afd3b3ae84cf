"""A batch's outputs: the progress it shows (in a terminal, in a log), reports that no child can forge or send
elsewhere, results kept as they come (a killed batch loses none that finished, and ``--resume`` does not grade
them again), the temporary folders a killed batch left, and exit code 4 when an output cannot be written.

Through real subprocesses on the jax-free toy exercise, as ``tests/test_batch.py``; the renderers through a
``Console`` of a given width.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import re
import select
import stat
import struct
import subprocess
import sys
import termios
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePath

import pytest
from rich.cells import cell_len
from rich.console import Console

from grader.errors import OutputError
from grader.exercise.spec import discover_exercises
from grader.output import OutputFolder
from grader.pipeline.batch import Earlier, JournalEntry, entry_from_report, exercise_digest
from grader.pipeline.source import read_source
from grader.render.batch import BatchProgress, summary_table
from grader.report.schema import BatchEntry, BatchReport
from grader.sandbox.isolation import choose_isolation
from tests.conftest import ROOT, TOY_EXERCISES, cli_env
from tests.test_batch import CORRECT, GRADER, ZEROS, gradebook_rows, run, write_class

SLOW = "import time\ntime.sleep(2)\n" + CORRECT
LINE = re.compile(r"^\[(\d+)/(\d+)\] +(\w+) +\S+ +[\d.]+s  (.*)$")


def shortened_from(shown: str, path: str) -> bool:
    """Whether ``shown`` is ``path`` whole, or its start and end around an ellipsis."""
    if shown == path:
        return True
    start, _, end = shown.partition("…")
    return bool(_) and len(shown) <= len(path) and path.startswith(start) and path.endswith(end)


def entries(path_length: int, count: int = 3) -> list[BatchEntry]:
    """Finished entries whose paths are ``path_length`` characters long, one graded, one not graded."""
    made = []
    for n in range(count):
        path = f"class/{n}/" + "x" * max(path_length - 20, 1) + "/solution.py"
        if n % 2:
            made.append(BatchEntry(path=path, status="skipped", message="no exercise could be chosen " * 4))
        else:
            made.append(BatchEntry(path=path, status="failed", diagnosis="values-mismatch", message="m"))
    return made


# --- what the progress and the summary show ----------------------------------------------------------


@pytest.mark.parametrize("width", [40, 60, 100, 200])
@pytest.mark.parametrize("path_length", [20, 99, 300])
def test_a_progress_line_is_one_line_that_fits_whatever_the_path(width: int, path_length: int) -> None:
    out = io.StringIO()
    finished = entries(path_length)
    with BatchProgress(Console(file=out, width=width, color_system=None), len(finished), live=False) as progress:
        for entry in finished:
            progress.finished(entry)
        progress.finished(finished[0])  # graded again on its own: the line gets a note
    lines = out.getvalue().splitlines()
    assert len(lines) == len(finished) + 1  # one line each, never wrapped
    assert all(cell_len(line) <= width for line in lines)
    assert [line.split("]")[0] for line in lines] == ["[1/3", "[2/3", "[3/3", "[3/3"]
    if width >= 60:  # room for the path: shortened in its middle, never cut at one end
        for line, entry in zip(lines, [*finished, finished[0]], strict=True):
            match = LINE.match(line)
            assert match, line
            shown = match.group(4).split("  ")[0]
            assert shortened_from(shown, entry.path), (shown, entry.path)
    if width >= 100:
        assert lines[0].endswith("values-mismatch") and lines[-1].endswith("(graded again on its own)")


@pytest.mark.parametrize("width", [60, 80, 100, 160])
@pytest.mark.parametrize("path_length", [20, 99, 300])
def test_the_summary_never_splits_a_path(width: int, path_length: int) -> None:
    finished = entries(path_length, count=4)
    batch = BatchReport(total=4, counts={"failed": 2, "skipped": 2}, isolation="process", jobs=1, submissions=finished)
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(summary_table(batch))
    lines = out.getvalue().splitlines()
    assert all(cell_len(line) <= width for line in lines)
    cells = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    shown = [cell for cell in cells if cell]  # a row's first line; the lines it wraps to leave the cell empty
    assert len(shown) == len(finished)
    assert all(shortened_from(cell, entry.path) for cell, entry in zip(shown, finished, strict=True)), shown


def test_the_live_progress_counts_what_workers_finish() -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True, color_system=None)
    finished = entries(30, count=6)
    with BatchProgress(console, len(finished), live=True) as progress, ThreadPoolExecutor(2) as workers:
        for done in [workers.submit(progress.finished, entry) for entry in finished]:
            done.result()  # raises what the call raised
    text = out.getvalue()
    assert all(f"[{n}/6]" in text for n in range(1, 7)), text
    assert all(entry.path in text for entry in finished)


def _terminal(columns: int) -> tuple[int, int]:
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    return leader, follower


def _read_until_closed(leader: int, proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """Everything written to the terminal until every writer closed it (the grader ended)."""
    screen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        screen += chunk
    return screen


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a pseudo-terminal end to end")
def test_the_progress_bar_in_a_terminal_with_two_workers(cache_dir: Path, tmp_path: Path) -> None:
    submissions = {"a": CORRECT, "b": ZEROS, "c": CORRECT, "d": CORRECT, "e": ZEROS}
    write_class(tmp_path / "class", submissions)
    gradebook, document = tmp_path / "grades.csv", tmp_path / "batch.json"
    leader, follower = _terminal(100)
    command = [*GRADER, "grade", str(tmp_path / "class"), "-j", "2", "--gradebook", str(gradebook)]
    proc = subprocess.Popen(
        [*command, "-f", "json", "--output", str(document)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=cli_env(cache_dir, GRADER_EXERCISES=str(TOY_EXERCISES), TERM="xterm"),
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(follower)
    try:
        screen = _read_until_closed(leader, proc, timeout=240)
        assert proc.wait(timeout=60) == 1, screen[-3000:]  # graded: two did not pass; no fault (3)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    rows = gradebook_rows(gradebook)
    assert {name: row["status"] for name, row in rows.items()} == {
        name: "passed" if source == CORRECT else "failed" for name, source in submissions.items()
    }
    batch = json.loads(document.read_text())
    assert batch["counts"] == {"passed": 3, "failed": 2} and batch["jobs"] == 2
    text = screen.decode(errors="replace")
    assert "Grading" in text and "\x1b[" in text  # the live bar, drawn for a terminal
    assert all(f"[{n}/5]" in text for n in range(1, 6))  # a line per finished submission above it
    assert "internal error" not in text


def test_progress_lines_and_the_summary_stay_within_100_columns_in_a_log(cache_dir: Path, tmp_path: Path) -> None:
    deep = tmp_path / "class" / ("a-rather-long-folder-name-" * 4)
    paths = write_class(deep, {"ada": CORRECT, "bo": ZEROS})
    result = run(cache_dir, str(tmp_path / "class"))
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == len(paths) and all(len(line) <= 100 for line in lines), result.stderr
    assert any(line.endswith("values-mismatch") for line in lines)
    for line in lines:
        shown = LINE.match(line).group(4).split("  ")[0]  # type: ignore[union-attr]
        assert any(shortened_from(shown, str(path)) for path in paths.values()), shown
    assert all(len(line) <= 100 for line in result.stdout.splitlines())


# --- reports no child can forge or misplace ----------------------------------------------------------


@pytest.mark.parametrize("shared", ["reports", "reports/ada"])
def test_an_output_dir_others_can_write_is_refused(cache_dir: Path, tmp_path: Path, shared: str) -> None:
    write_class(tmp_path / "class", {"ada": CORRECT, "bo": CORRECT})  # reports/ada/..., reports/bo/...
    reports = tmp_path / "reports"
    (tmp_path / shared).mkdir(parents=True)
    os.chmod(tmp_path / shared, 0o777)
    result = run(cache_dir, str(tmp_path / "class"), "--output-dir", str(reports))
    assert result.returncode == 2, result.stderr
    assert "--output-dir" in result.stderr and "other users can write" in result.stderr
    assert str(tmp_path / shared) in result.stderr
    assert not list(reports.rglob("*.txt"))  # refused before anything was graded


def test_the_output_dir_is_made_before_any_child_and_only_the_grader_can_write(cache_dir: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"  # like /tmp: anyone may make folders in it
    shared.mkdir()
    os.chmod(shared, 0o1777)
    reports = shared / "reports"
    # Makes the output folder first if it can, and plants a forged report for the learner after it.
    forges = (
        f"import os\ntry:\n    os.makedirs({str(reports / 'bo')!r}, 0o777, exist_ok=True)\n"
        f"    open({str(reports / 'bo' / 'solution.py.txt')!r}, 'w').write('PASSED 4/4')\n"
        "except OSError:\n    pass\n" + CORRECT
    )
    write_class(tmp_path / "class", {"ada": forges, "bo": ZEROS})
    result = subprocess.run(
        [*GRADER, "grade", str(tmp_path / "class"), "--output-dir", str(reports), "-j", "1"],
        capture_output=True,
        text=True,
        env=cli_env(cache_dir, GRADER_EXERCISES=str(TOY_EXERCISES)),
        cwd=ROOT,
        timeout=600,
        umask=0,  # even so, nothing the grader makes is writable by others
    )
    assert result.returncode == 1, result.stderr
    made = [reports, *reports.rglob("*")]
    assert all(not os.stat(p).st_mode & 0o022 for p in made), {str(p): oct(os.stat(p).st_mode) for p in made}
    assert stat.S_IMODE(os.stat(reports).st_mode) == 0o755
    if choose_isolation().drop_to is not None:  # children run as other users: the forgery cannot happen
        assert os.stat(reports).st_uid == os.geteuid()
        assert "values-mismatch" in (reports / "bo" / "solution.py.txt").read_text()


def test_links_planted_in_the_output_dir_are_never_followed(cache_dir: Path, tmp_path: Path) -> None:
    write_class(tmp_path / "class", {"ada": CORRECT, "bo": ZEROS})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target").write_text("untouched")
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "ada").symlink_to(outside)  # a folder link: ada's report would land outside
    (reports / "bo").mkdir()
    (reports / "bo" / "solution.py.json").symlink_to(outside / "target")  # a file link
    result = run(cache_dir, str(tmp_path / "class"), "-f", "json", "--output-dir", str(reports))

    assert result.returncode == 4, result.stderr  # graded; one report could not be written
    assert [p.name for p in outside.iterdir()] == ["target"] and (outside / "target").read_text() == "untouched"
    written = reports / "bo" / "solution.py.json"
    assert not written.is_symlink() and json.loads(written.read_text())["status"] == "failed"  # in place
    by_name = {Path(e["path"]).parent.name: e for e in json.loads(result.stdout)["submissions"]}
    assert by_name["ada"]["status"] == "passed" and by_name["ada"]["report_file"] is None
    assert "report not written" in by_name["ada"]["message"] and "symbolic link" in by_name["ada"]["message"]
    assert f"cannot write {reports / 'ada' / 'solution.py.json'}: a symbolic link" in result.stderr


@pytest.mark.parametrize("planted", ["folder-link", "shared-folder", "file-link", "nothing"])
def test_a_report_is_written_in_place_or_not_at_all(tmp_path: Path, planted: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.json").write_text("untouched")
    reports = tmp_path / "reports"
    (reports / "a").mkdir(parents=True)
    if planted == "folder-link":
        (reports / "a").rmdir()
        (reports / "a").symlink_to(outside)
    elif planted == "shared-folder":
        os.chmod(reports / "a", 0o777)
    elif planted == "file-link":
        (reports / "a" / "x.json").symlink_to(outside / "x.json")
    with OutputFolder.make(reports, private=True) as folder:
        if planted in ("folder-link", "shared-folder"):
            reason = "a symbolic link" if planted == "folder-link" else f"other users can write in {reports / 'a'}"
            with pytest.raises(OutputError, match=f"cannot write {re.escape(str(reports / 'a' / 'x.json'))}: {reason}"):
                folder.write(PurePath("a/x.json"), b"report")
        else:
            assert folder.write(PurePath("a/x.json"), b"report") == reports / "a" / "x.json"
            assert (reports / "a" / "x.json").read_bytes() == b"report" and not (reports / "a" / "x.json").is_symlink()
            assert not [p for p in (reports / "a").iterdir() if p.name != "x.json"]  # no temporary file left
    assert [p.name for p in outside.iterdir()] == ["x.json"] and (outside / "x.json").read_text() == "untouched"


# --- outputs that cannot be written: exit code 4 ---------------------------------------------------------


def test_a_gradebook_that_cannot_be_written_exits_4_and_keeps_the_rest(cache_dir: Path, tmp_path: Path) -> None:
    write_class(tmp_path / "class", {"ada": CORRECT, "bo": CORRECT})
    gradebook = tmp_path / "grades.csv"
    gradebook.mkdir()  # a folder where the gradebook would go
    result = run(cache_dir, str(tmp_path / "class"), "-f", "json", "--gradebook", str(gradebook))
    assert result.returncode == 4, result.stderr
    assert f"grader: cannot write {gradebook}: Is a directory" in result.stderr
    assert json.loads(result.stdout)["counts"] == {"passed": 2}  # the document was still written


@pytest.mark.parametrize("batch", [False, True])
def test_an_output_in_a_folder_that_cannot_be_made_exits_4(cache_dir: Path, tmp_path: Path, batch: bool) -> None:
    paths = write_class(tmp_path / "class", {"ada": CORRECT})
    (tmp_path / "file").write_text("")
    output = tmp_path / "file" / "report.json"  # its folder would be a file
    given = [str(tmp_path / "class")] if batch else [str(paths["ada"])]
    result = run(cache_dir, *given, "-f", "json", "--output", str(output))
    assert result.returncode == 4, result.stderr
    assert f"grader: cannot write {output}: Not a directory" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder all the same")
def test_a_read_only_output_dir_exits_4_with_a_message(cache_dir: Path, tmp_path: Path) -> None:
    write_class(tmp_path / "class", {"ada": CORRECT})
    reports = tmp_path / "reports"
    reports.mkdir()
    os.chmod(reports, 0o555)
    result = run(cache_dir, str(tmp_path / "class"), "--output-dir", str(reports))
    assert result.returncode == 4, result.stderr
    assert f"cannot write {reports / 'ada'}" in result.stderr and "Permission denied" in result.stderr


# --- kept as they come: a killed batch, --resume -----------------------------------------------------


def test_a_killed_batch_keeps_what_finished_and_resume_does_not_grade_it_again(cache_dir: Path, tmp_path: Path) -> None:
    paths = write_class(tmp_path / "class", {"ada": CORRECT, "bo": ZEROS, "cy": SLOW, "di": SLOW})
    gradebook, scratch = tmp_path / "grades.csv", tmp_path / "tmp"
    scratch.mkdir()
    env = cli_env(cache_dir, GRADER_EXERCISES=str(TOY_EXERCISES), TMPDIR=str(scratch))
    command = [*GRADER, "grade", str(tmp_path / "class"), "-j", "1", "--gradebook", str(gradebook)]
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline, seen = time.monotonic() + 120, ""
    try:
        while time.monotonic() < deadline and "[2/4]" not in seen:  # ada and bo finished: cy is slow
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
    finally:
        proc.kill()  # SIGKILL: nothing runs after it
        proc.wait(timeout=60)
        proc.stderr.close()
    assert "[2/4]" in seen, seen
    killed = gradebook_rows(gradebook)
    assert {"ada", "bo"} <= set(killed) and set(killed) < set(paths)  # what finished, and only that
    assert killed["ada"]["status"] == "passed" and killed["bo"]["status"] == "failed"
    journal = [json.loads(line)["entry"] for line in (tmp_path / "grades.csv.journal").read_text().splitlines()]
    finished = {Path(entry["path"]).parent.name for entry in journal}  # appended just before the gradebook
    assert set(killed) <= finished < set(paths)
    left = [p.name for p in scratch.glob("grader-batch-*")]
    assert len(left) == 1  # the killed batch's own folder, left behind

    paths["bo"].write_text(CORRECT)  # bo resubmits before the run is resumed: graded again
    resumed = run(cache_dir, *command[4:], "--resume", "-f", "json", TMPDIR=str(scratch))
    assert resumed.returncode == 0, resumed.stderr
    batch = json.loads(resumed.stdout)
    assert batch["total"] == len(batch["submissions"]) == 4 and batch["counts"] == {"passed": 4}
    by_name = {Path(entry["path"]).parent.name: entry for entry in batch["submissions"]}
    assert {name for name, entry in by_name.items() if entry["resumed"]} == finished - {"bo"}
    for name in set(killed) - {"bo"}:  # as graded before the kill, not graded again
        assert f"{by_name[name]['duration_s']:.3f}" == killed[name]["duration_s"]
        assert by_name[name]["report"]["submission"]["sha256"] == killed[name]["sha256"]
    assert by_name["bo"]["report"]["submission"]["sha256"] != killed["bo"]["sha256"]
    assert set(gradebook_rows(gradebook)) == set(paths)
    assert "kept from the earlier run" in resumed.stderr
    assert not [name for name in left if (scratch / name).exists()]  # the killed batch's folder removed


def test_resume_keeps_only_a_grade_that_still_holds(grade_toy, tmp_path: Path) -> None:
    report = grade_toy(CORRECT, tmp_path)
    path = tmp_path / "submission.py"
    exercise = discover_exercises([TOY_EXERCISES])["toy-scale"]
    digest = exercise_digest(exercise)
    entry = entry_from_report(path, report, None)
    source = read_source(path)

    def kept(line: JournalEntry, **changes: object) -> bool:
        asked = {"source": source, "exercise_id": exercise.id, "digest": digest, "seed": None} | changes
        return Earlier({str(path): line}).kept(str(path), **asked) is not None  # type: ignore[arg-type]

    line = JournalEntry(entry=entry, exercise_digest=digest)
    assert kept(line)
    path.write_text(CORRECT + "\n# changed\n")
    assert not kept(line, source=read_source(path))  # another file
    assert not kept(line, seed=7)  # other cases
    assert not kept(line, exercise_id="toy-twin")
    assert not kept(line, digest="0" * 64)  # the exercise or its reference changed
    other_version = report.model_copy(update={"environment": report.environment.model_copy(update={"grader": "0"})})
    assert not kept(line.model_copy(update={"entry": entry.model_copy(update={"report": other_version})}))
    fault = BatchEntry(path=str(path), status="fault", message="internal error")
    assert not kept(JournalEntry(entry=fault, exercise_digest=digest))  # a fault is always graded again


# --- what killed graders left in the temporary folder ------------------------------------------------


def test_a_batch_removes_only_the_temporary_folders_no_grader_uses(cache_dir: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    names = ["grader-run-stale", "grader-batch-1-stale", "grader-batch-2-live", "grader-batch-3-nolock"]
    for name in [*names, "grader-run-busy", "grader-run-theirs"]:
        (scratch / name / "work").mkdir(parents=True)
    for name in ("grader-batch-1-stale", "grader-batch-2-live"):
        (scratch / name / ".grader-batch.lock").touch()
    an_hour_ago = time.time() - 3600  # a child's folder counts as stale only well after it was made
    for name in ("grader-run-stale", "grader-run-busy", "grader-run-theirs"):
        os.utime(scratch / name, (an_hour_ago, an_hour_ago))
    (scratch / "grader-run-young" / "work").mkdir(parents=True)  # made just now: perhaps about to be used
    held = os.open(scratch / "grader-batch-2-live" / ".grader-batch.lock", os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # a batch under way holds its lock
    busy = subprocess.Popen(  # a child under way works in its folder
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        cwd=scratch / "grader-run-busy" / "work",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    theirs = os.geteuid() == 0
    if theirs:
        os.chown(scratch / "grader-run-theirs", 4242, 4242)  # another user's (not a sandbox uid)
    try:
        assert busy.stdout is not None and busy.stdout.readline() == b"ready\n"
        paths = write_class(tmp_path / "class", {"ada": CORRECT})
        result = run(cache_dir, str(paths["ada"]), "--gradebook", str(tmp_path / "grades.csv"), TMPDIR=str(scratch))
        assert result.returncode == 0, result.stderr
    finally:
        busy.communicate(b"", timeout=60)
        os.close(held)
    left = sorted(p.name for p in scratch.glob("grader-*"))
    expected = {
        "grader-batch-2-live",
        "grader-batch-3-nolock",
        "grader-run-busy",
        "grader-run-theirs",
        "grader-run-young",
    }
    if not theirs:  # this user's, and no process works in it: stale
        expected.remove("grader-run-theirs")
    assert set(left) == expected, left


def test_the_journal_is_only_read_when_no_one_else_could_have_written_it(cache_dir: Path, tmp_path: Path) -> None:
    paths = write_class(tmp_path / "class", {"ada": CORRECT})
    gradebook = tmp_path / "grades.csv"
    journal = tmp_path / "grades.csv.journal"
    journal.write_text("")
    os.chmod(journal, 0o666)
    refused = run(cache_dir, str(paths["ada"]), "--gradebook", str(gradebook), "--resume")
    assert refused.returncode == 2 and "could have been forged" in refused.stderr
    journal.unlink()
    journal.symlink_to(tmp_path / "elsewhere")
    refused = run(cache_dir, str(paths["ada"]), "--gradebook", str(gradebook), "--resume")
    assert refused.returncode == 2 and "symbolic link" in refused.stderr
    plain = run(cache_dir, str(paths["ada"]), "--gradebook", str(gradebook))  # without --resume: replaced
    assert plain.returncode == 0, plain.stderr
    assert not journal.is_symlink() and not (tmp_path / "elsewhere").exists()
    assert len(journal.read_text().splitlines()) == 1
    with contextlib.suppress(FileNotFoundError):
        assert csv.DictReader(gradebook.open()).fieldnames[0] == "submission"  # type: ignore[index]

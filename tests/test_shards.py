"""A class graded past one machine: ``grader grade CLASS --shard I/N`` grades a share fixed by a hash of each
submission's path, and ``grader merge`` combines the shards' batch reports into the class's.

The share and the merge are pure functions, tested by tables and on models built here (nothing graded); the
examples for GitHub Actions and Kubernetes are checked against their schemas and against the CLI; one test
grades a small class once as a batch and once in three shards, and checks that the merge equals the batch.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path, PurePath

import pytest
import yaml

from grader.cli.exits import batch_exit_code
from grader.errors import UsageError
from grader.pipeline.merge import ShardReport, merge_shards, read_shard_report
from grader.pipeline.shard import MAX_SHARDS, Shard, parse_shard, shard_of, share_out, take_share
from grader.report.schema import BatchEntry, BatchReport, ShardInfo
from tests.conftest import ROOT, SUBMISSIONS, TOY_EXERCISES, cli_env

GRADER = [sys.executable, "-m", "grader"]
WORKFLOW = ROOT / "examples" / "github-shards.yml"
KUBERNETES = ROOT / "examples" / "kubernetes"


# --- parsing --shard -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "index", "count"), [("1/1", 1, 1), ("1/3", 1, 3), ("3/3", 3, 3), (" 2/4 ", 2, 4), ("7/10000", 7, 10000)]
)
def test_a_shard_is_i_of_n_counted_from_one(value: str, index: int, count: int) -> None:
    assert parse_shard(value, {}) == Shard(index, count)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("0/3", "the index I must be 1 to 3 (shards are counted from 1)"),
        ("4/3", "the index I must be 1 to 3"),
        ("3/0", "the number of shards N must be 1 to"),
        (f"1/{MAX_SHARDS + 1}", f"must be 1 to {MAX_SHARDS}"),
        ("a/b", "--shard takes I/N"),
        ("-1/3", "--shard takes I/N"),
        ("1/3/4", "--shard takes I/N"),
        ("2", "--shard takes I/N"),
        ("", "--shard takes I/N"),
        ("１/3", "--shard takes I/N"),  # a full-width digit is not a number here
    ],
)
def test_a_bad_shard_is_a_usage_error_that_says_why(value: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_shard(value, {})
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("environ", "count", "index"),
    [
        ({"JOB_COMPLETION_INDEX": "0"}, 4, 1),  # Kubernetes counts from 0
        ({"JOB_COMPLETION_INDEX": "3"}, 4, 4),
        ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"}, 4, 1),  # 1-4
        ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"}, 4, 4),
        ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0"}, 4, 1),  # --array=0-3
        ({"SLURM_ARRAY_TASK_ID": "20", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "10"}, 4, 3),  # 0-30:10
        ({"SLURM_ARRAY_TASK_ID": "2"}, 4, 3),  # no MIN: taken as counted from 0
        ({"JOB_COMPLETION_INDEX": "1", "SLURM_ARRAY_TASK_ID": "3"}, 4, 2),  # Kubernetes' first
    ],
)
def test_auto_takes_the_index_from_the_engine(environ: dict[str, str], count: int, index: int) -> None:
    shard = parse_shard(f"auto/{count}", environ)
    assert (shard.index, shard.count) == (index, count)
    assert shard.source.split("=")[0] in environ


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({}, "neither is set: give it as --shard I/4"),
        ({"JOB_COMPLETION_INDEX": ""}, "neither is set"),
        ({"JOB_COMPLETION_INDEX": "4"}, "JOB_COMPLETION_INDEX=4 is shard 5, but --shard auto/4 has 4 shards"),
        ({"JOB_COMPLETION_INDEX": "x"}, "JOB_COMPLETION_INDEX='x': expected a whole number"),
        ({"JOB_COMPLETION_INDEX": "-1"}, "expected a whole number"),
        ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "5"}, "COUNT=5, but"),
        ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1"}, "SLURM_ARRAY_TASK_ID=5 is shard 5, but"),
        ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "10"}, "not a task of"),
        ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "1"}, "not a task of"),
    ],
)
def test_auto_without_a_usable_index_is_a_usage_error(environ: dict[str, str], says: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_shard("auto/4", environ)
    assert says in str(caught.value)


# --- the share ----------------------------------------------------------------------------------------


def _names(count: int, start: int = 0) -> list[PurePath]:
    return [PurePath(f"student-{n:03d}/solution.py") for n in range(start, start + count)]


def test_the_shard_is_the_documented_hash() -> None:
    """1 + (the first 8 bytes of sha256 of the path below the class folder, big-endian) mod N: what the README
    promises, so that another tool (or another grader version) can tell where a submission went."""
    for name in ["alice/solution.py", "bob.py", "x/y/z.py"]:
        number = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
        assert [shard_of(name, n) for n in (1, 2, 3, 7)] == [1 + number % n for n in (1, 2, 3, 7)]
    assert shard_of(PurePath("alice") / "solution.py", 5) == shard_of("alice/solution.py", 5)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 64])
def test_the_shards_partition_the_class(count: int) -> None:
    names = _names(200)
    shares = share_out(names, count)
    assert sorted(shares) == list(range(1, count + 1))
    everywhere = [name for share in shares.values() for name in share]
    assert sorted(everywhere) == sorted(names)  # each in exactly one shard
    by_take = [take_share(dict(zip(names, names, strict=True)), Shard(i, count)) for i in range(1, count + 1)]
    assert by_take == [shares[i] for i in range(1, count + 1)]  # in the class's order
    if count <= 7:
        assert all(len(share) >= 200 // count // 2 for share in shares.values())  # none starved


@pytest.mark.parametrize("count", [2, 3, 5])
def test_adding_files_leaves_every_other_file_in_its_shard(count: int) -> None:
    before = {name: shard_of(name, count) for name in _names(100)}
    after = {name: shard_of(name, count) for name in _names(60, start=100) + _names(100)}
    assert {name: after[name] for name in before} == before


# --- merging: the shards' reports built here ------------------------------------------------------------

CLASS = [f"class/{name}/solution.py" for name in ("alice", "bob", "carol", "dave", "erin")]


def _entry(path: str) -> BatchEntry:
    status = "failed" if "bob" in path else "passed"
    return BatchEntry(path=path, status=status, score=4.0 if status == "passed" else 1.0, max_score=4.0, message="m")


def _shard(
    index: int,
    count: int = 3,
    *,
    paths: list[str] | None = None,
    klass: list[str] | None = None,
    interrupted: bool = False,
    **info: object,
) -> BatchReport:
    """Shard ``index`` of ``count`` of CLASS as grading would report it: its share, unless ``paths`` says."""
    klass = CLASS if klass is None else klass
    mine = [path for path in klass if shard_of(PurePath(path).relative_to("class"), count) == index]
    entries = [_entry(path) for path in (mine if paths is None else paths)]
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.status] = counts.get(entry.status, 0) + 1
    fields: dict[str, object] = {"exercises": {"train-eval-dropout": "d" * 64}, "seed": 7, "grader": "0.1.0"}
    fields.update(info)
    return BatchReport(
        total=len(entries),
        counts=counts,  # type: ignore[arg-type]
        interrupted=interrupted,
        isolation="bwrap",
        jobs=2,
        duration_s=float(index),
        submissions=entries,
        shard=ShardInfo(index=index, count=count, submissions=klass, **fields),  # type: ignore[arg-type]
    )


def _reports(*batches: BatchReport) -> list[ShardReport]:
    return [ShardReport(f"shard-{n}.json", batch) for n, batch in enumerate(batches, start=1)]


def test_the_class_shared_out_in_three_is_not_one_per_shard() -> None:
    """The class of these models: every shard of 3 holds some of it."""
    assert [len(_shard(i).submissions) for i in (1, 2, 3)] == [2, 1, 2]


def test_merged_shards_are_the_class_in_its_order() -> None:
    merged = merge_shards(_reports(_shard(3), _shard(1), _shard(2)))
    assert [entry.path for entry in merged.submissions] == CLASS
    assert merged.total == 5 and merged.counts == {"passed": 4, "failed": 1}
    assert merged.shard is None and merged.merged_from == 3
    assert merged.jobs == 6 and merged.duration_s == 3.0 and merged.isolation == "bwrap"
    assert not merged.interrupted and not merged.all_passed and batch_exit_code(merged) == 1


def test_an_empty_shard_merges_and_exits_as_passed() -> None:
    empty = _shard(2, paths=[])
    assert empty.total == 0 and empty.all_passed and batch_exit_code(empty) == 0
    merged = merge_shards(_reports(_shard(1, paths=CLASS[:3]), empty, _shard(3, paths=CLASS[3:])))
    assert [entry.path for entry in merged.submissions] == CLASS


def _not_a_shard() -> BatchReport:
    return BatchReport(total=0, counts={}, isolation="bwrap", jobs=1)


# Shards that do not belong together, and what the refusal says.
REFUSALS = {
    "count": (
        lambda: [_shard(1), _shard(2), _shard(3, count=4)],
        "number of shards: shard-1.json, shard-2.json: 3; shard-3.json: 4",
    ),
    "grader": (
        lambda: [_shard(1), _shard(2, grader="0.2.0"), _shard(3)],
        "grader version: shard-1.json, shard-3.json: 0.1.0; shard-2.json: 0.2.0",
    ),
    "seed": (
        lambda: [_shard(1), _shard(2), _shard(3, seed=8)],
        "--seed: shard-1.json, shard-2.json: 7; shard-3.json: 8",
    ),
    "no-seed": (
        lambda: [_shard(1, seed=None), _shard(2), _shard(3)],
        "--seed: shard-1.json: (none); shard-2.json, shard-3.json: 7",
    ),
    "exercise": (lambda: [_shard(1, exercise="x"), _shard(2), _shard(3)], "--exercise: shard-1.json: x;"),
    "exercise-digest": (
        lambda: [_shard(1), _shard(2, exercises={"train-eval-dropout": "e" * 64}), _shard(3)],
        "shard-2.json: train-eval-dropout eeeeeeeeeeee",
    ),
    "other-class": (
        lambda: [_shard(1), _shard(2), _shard(3, klass=[*CLASS, "class/zed/solution.py"])],
        "class/zed/solution.py only in shard-3.json",
    ),
    "class-order": (
        lambda: [_shard(1), _shard(2), _shard(3, klass=CLASS[::-1])],
        "the same submissions in another order",
    ),
    "twice": (lambda: [_shard(1), _shard(2), _shard(2)], "shard 2/3 is given twice: shard-2.json and shard-3.json"),
    "missing": (lambda: [_shard(1), _shard(3)], "missing shard 2 of 3 (given: 1, 3)"),
    "missing-several": (lambda: [_shard(1, count=5)], "missing shards 2, 3, 4, 5 of 5 (given: 1)"),
    "out-of-range": (lambda: [_shard(1), _shard(2), _shard(3), _shard(4)], "shard-4.json: shard 4/3 is out of range"),
    "in-two": (
        lambda: [_shard(1), _shard(2, paths=[CLASS[4], CLASS[0]]), _shard(3)],
        "class/alice/solution.py is in two shards: shard-1.json (shard 1/3) and shard-2.json (shard 2/3)",
    ),
    "not-in-class": (
        lambda: [_shard(1), _shard(2, paths=[CLASS[4], "class/x.py"]), _shard(3)],
        "shard-2.json (shard 2/3): class/x.py is not among the submissions of the class",
    ),
    "submission-missing": (
        lambda: [_shard(1), _shard(2, paths=[]), _shard(3)],
        "1 submission of the class in no shard's report: class/erin/solution.py",
    ),
    "interrupted": (
        lambda: [_shard(1, paths=[], interrupted=True), _shard(2), _shard(3)],
        "2 submissions of the class in no shard's report: class/alice/solution.py, class/carol/solution.py; "
        "interrupted: shard-1.json (shard 1/3)",
    ),
    "not-a-shard": (
        lambda: [_shard(1), _not_a_shard(), _shard(3)],
        "not a shard's batch report (graded without --shard I/N): shard-2.json",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_shards_that_do_not_belong_together_are_refused_saying_what_differs(case: str) -> None:
    batches, says = REFUSALS[case]
    with pytest.raises(UsageError) as caught:
        merge_shards(_reports(*batches()))
    assert says in str(caught.value)


def test_nothing_to_merge_is_refused() -> None:
    with pytest.raises(UsageError):
        merge_shards([])


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, "cannot be read"),
        ("{}", "not a grader batch report (total: Field required)"),
        ("not json", "not a grader batch report"),
        ('{"total": 1, "counts": {}, "isolation": "bwrap", "jobs": 1, "shard": {"index": 0}}', "shard.index"),
    ],
)
def test_a_file_that_is_not_a_batch_report_is_named(tmp_path: Path, text: str | None, says: str) -> None:
    path = tmp_path / "shard.json"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        read_shard_report(path)
    assert str(path) in str(caught.value) and says in str(caught.value)


def test_an_old_batch_report_still_validates() -> None:
    """The shard fields are optional: a batch report of schema 1.1 reads as before, without them."""
    old = {"schema_version": "1.1", "kind": "batch", "total": 0, "counts": {}, "isolation": "bwrap", "jobs": 1}
    batch = BatchReport.model_validate(old)
    assert batch.shard is None and batch.merged_from is None


# --- the CLI: options, exit codes, the merged documents ------------------------------------------------


def _invoke(*args: str, env: dict[str, str] | None = None):
    from typer.testing import CliRunner

    from grader.cli.app import app

    return CliRunner().invoke(app, list(args), env=env)


@pytest.mark.parametrize("value", ["0/3", "4/3", "a/b", "auto/3"])
def test_a_bad_shard_option_exits_2_before_anything_is_graded(tmp_path: Path, value: str) -> None:
    (tmp_path / "class" / "alice").mkdir(parents=True)
    (tmp_path / "class" / "alice" / "solution.py").write_text("x = 1\n", encoding="utf-8")
    env = {"JOB_COMPLETION_INDEX": "", "SLURM_ARRAY_TASK_ID": ""}
    result = _invoke(
        "grade", str(tmp_path / "class"), "--shard", value, "--gradebook", str(tmp_path / "g.csv"), env=env
    )
    assert result.exit_code == 2, result.output
    assert "--shard" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["class"]  # nothing written


def _write_shards(folder: Path, *batches: BatchReport) -> list[str]:
    files = []
    for number, batch in enumerate(batches, start=1):
        path = folder / f"shard-{number}.json"
        path.write_text(batch.model_dump_json(), encoding="utf-8")
        files.append(str(path))
    return files


def test_merge_writes_the_class_documents_and_exits_as_a_batch(tmp_path: Path) -> None:
    files = _write_shards(tmp_path, _shard(1), _shard(2), _shard(3))
    out, book, junit = tmp_path / "out" / "class.json", tmp_path / "grades.csv", tmp_path / "junit.xml"
    args = ["merge", *files, "--format", "json", "-o", str(out), "--gradebook", str(book), "--report", f"junit={junit}"]
    result = _invoke(*args)
    assert result.exit_code == 1, result.output  # bob failed
    merged = BatchReport.model_validate_json(out.read_text(encoding="utf-8"))
    assert [entry.path for entry in merged.submissions] == CLASS and merged.merged_from == 3
    with book.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["student"], row["status"]) for row in rows] == [
        ("alice", "passed"), ("bob", "failed"), ("carol", "passed"), ("dave", "passed"), ("erin", "passed"),
    ]  # fmt: skip
    assert junit.read_text(encoding="utf-8").count("<testsuite ") == 5


def test_merge_of_passing_shards_exits_0_and_a_refusal_exits_2(tmp_path: Path) -> None:
    klass = [path for path in CLASS if "bob" not in path]  # bob's is the one that fails
    passing = _write_shards(tmp_path, *(_shard(i, klass=klass) for i in (1, 2, 3)))
    result = _invoke("merge", *passing, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"] == {"passed": 4}
    result = _invoke("merge", passing[0], passing[2])
    assert result.exit_code == 2 and "missing shard 2 of 3" in result.output and "Traceback" not in result.output


def test_merge_refuses_gradescope(tmp_path: Path) -> None:
    result = _invoke("merge", *_write_shards(tmp_path, _shard(1), _shard(2), _shard(3)), "--format", "gradescope")
    assert result.exit_code == 2 and "holds one submission" in result.output


def test_an_empty_shard_writes_an_empty_batch_report_and_exits_0(tmp_path: Path, cache_dir: Path) -> None:
    """On the jax-free toy exercise; the shard that gets none of the class grades nothing."""
    names = ["alice", "bob"]
    empty = next(i for i in range(1, 8) if all(shard_of(f"{name}/solution.py", 7) != i for name in names))
    for name in names:
        (tmp_path / "class" / name).mkdir(parents=True)
        (tmp_path / "class" / name / "solution.py").write_text("def scale(factor, x):\n    return x\n")
    out = tmp_path / "shard.json"
    result = subprocess.run(
        [*GRADER, "grade", str(tmp_path / "class"), "--shard", f"{empty}/7", "--format", "json", "-o", str(out)],
        capture_output=True,
        text=True,
        env=cli_env(cache_dir, GRADER_EXERCISES=str(TOY_EXERCISES)),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    batch = BatchReport.model_validate_json(out.read_text(encoding="utf-8"))
    assert batch.total == 0 and batch.submissions == [] and batch.counts == {}
    assert batch.shard is not None and (batch.shard.index, batch.shard.count) == (empty, 7)
    assert batch.shard.submissions == [str(tmp_path / "class" / name / "solution.py") for name in names]
    assert f"shard {empty}/7: 0 of 2 submissions" in result.stderr


# --- the examples: valid by their schemas, commands the CLI accepts -------------------------------------


def _parsed(words: list[str]) -> dict:
    """``grader SUBCOMMAND ...`` as the CLI parses it (nothing run)."""
    import typer.main

    from grader.cli.app import app

    assert words[0] == "grader"
    command = typer.main.get_command(app).commands[words[1]]  # type: ignore[attr-defined]
    return command.make_context(words[1], words[2:]).params


def _grader_lines(script: str) -> list[str]:
    return [line.strip() for line in script.splitlines() if line.strip().startswith("grader ")]


def _words(line: str, values: dict[str, str]) -> list[str]:
    """A shell line's words with the ``${{ ... }}`` expressions and ``$NAME`` variables it uses filled in."""
    for name, value in values.items():
        line = line.replace(name, value)
    return shlex.split(line.split(" || ")[0])


def test_the_shard_workflow_validates_against_githubs_schema(tmp_path: Path) -> None:
    pytest.importorskip("check_jsonschema", reason="check-jsonschema (GitHub's vendored workflow schema)")
    check = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
    result = subprocess.run([*check, str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"  # the schema can fail: a matrix that is not a mapping
    broken.write_text(WORKFLOW.read_text().replace("      matrix:\n", "      matrix: 4\n      other:\n"))
    result = subprocess.run([*check, str(broken)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr


def test_the_shard_workflow_grades_every_shard_once_and_merges_what_they_uploaded() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    grade, merge = workflow["jobs"]["grade"], workflow["jobs"]["merge"]
    matrix = grade["strategy"]["matrix"]["shard"]
    assert merge["needs"] == "grade" and matrix == list(range(1, len(matrix) + 1))
    env = {f"${name}": str(value) for name, value in workflow["env"].items()} | {"${{ github.run_id }}": "123"}
    (line,) = [line for step in grade["steps"] for line in _grader_lines(step.get("run", ""))]
    uploads = [step["with"] for step in grade["steps"] if step.get("uses", "").startswith("actions/upload-artifact")]
    shards = []
    for shard in matrix:
        values = env | {"${{ matrix.shard }}": str(shard), "${{ strategy.job-total }}": str(len(matrix))}
        params = _parsed(_words(line, values))
        assert params["fmt"] == "json" and params["paths"] == [workflow["env"]["CLASS"]] and params["seed"] == 123
        shards.append(parse_shard(params["shard"], {}))
        (upload,) = uploads
        assert upload["path"].replace("${{ matrix.shard }}", str(shard)) == str(params["output"])
    assert shards == [Shard(i, len(matrix)) for i in matrix]  # each shard once, N the matrix's size
    (download,) = [step["with"] for step in merge["steps"] if step.get("uses", "").startswith("actions/download")]
    assert download["merge-multiple"] is True
    assert PurePath(upload["name"].replace("${{ matrix.shard }}", "1")).match(download["pattern"])
    (merge_line,) = [line for step in merge["steps"] for line in _grader_lines(step.get("run", ""))]
    params = _parsed(_words(merge_line, env))
    assert [str(p) for p in params["files"]] == [f"{download['path']}/*.json"] and params["gradebook"] is not None
    uploaded = [step["with"]["path"].split() for step in merge["steps"] if "upload-artifact" in step.get("uses", "")]
    written = [str(params["gradebook"])] + [value.partition("=")[2] for value in params["report_options"]]
    assert uploaded == [written]


def _manifests() -> dict[str, list[dict]]:
    return {path.name: list(yaml.safe_load_all(path.read_text())) for path in sorted(KUBERNETES.glob("*.yaml"))}


def test_the_kubernetes_manifests_validate_against_the_kubernetes_schemas() -> None:
    validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (bundled Kubernetes schemas)")
    manifests = _manifests()
    assert sorted(manifests) == ["grade-class.yaml", "merge-class.yaml"]
    for documents in manifests.values():
        for document in documents:
            validate.validate(document, "1.30.0", strict=True)  # raises ValidationError, naming the field
    job = manifests["grade-class.yaml"][1]
    job["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []  # the schema can fail: a misspelt field
    with pytest.raises(validate.ValidationError):
        validate.validate(job, "1.30.0", strict=True)


def test_the_indexed_job_grades_each_shard_once_on_the_volume_the_merge_reads() -> None:
    manifests = _manifests()
    claim, job = manifests["grade-class.yaml"]
    (merge_job,) = manifests["merge-class.yaml"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["parallelism"] <= spec["completions"]
    container = spec["template"]["spec"]["containers"][0]
    env = {f"${item['name']}": item["value"] for item in container["env"]}
    assert int(env["$SHARDS"]) == spec["completions"]
    (line,) = _grader_lines(container["args"][0])
    shards, outputs = [], []
    for index in range(spec["completions"]):  # what Kubernetes sets: 0 to completions - 1
        words = _words(line, {"$JOB_COMPLETION_INDEX": str(index), **env})
        params = _parsed(words)
        shards.append(parse_shard(params["shard"], {"JOB_COMPLETION_INDEX": str(index)}))
        outputs.append(params["output"])
    assert [(s.index, s.count) for s in shards] == [(i, spec["completions"]) for i in range(1, spec["completions"] + 1)]
    merge_container = merge_job["spec"]["template"]["spec"]["containers"][0]
    (merge_line,) = _grader_lines(merge_container["args"][0])
    merge_params = _parsed(shlex.split(merge_line.split(" || ")[0]))
    (pattern,) = merge_params["files"]
    assert all(PurePath(output).match(str(pattern)) for output in outputs)  # the merge reads every shard
    for pod in (job, merge_job):
        pod_spec = pod["spec"]["template"]["spec"]
        assert pod_spec["restartPolicy"] == "Never"
        assert pod_spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert pod_spec["containers"][0]["volumeMounts"][0]["mountPath"] == "/data"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # pods on several nodes share it


# --- one class, graded as one batch and in three shards ------------------------------------------------

# Students whose shards of 3 are 1, 3, 1, 2 (test_the_end_to_end_class_is_in_every_shard).
END_TO_END = {
    "alice": "correct.py",
    "bob": "wrong_dropout_key.py",
    "carol": "wrong_inverted_flag.py",
    "frank": "broken_syntax.py",  # starts no child
}


def test_the_end_to_end_class_is_in_every_shard() -> None:
    assert [shard_of(f"{student}/solution.py", 3) for student in END_TO_END] == [1, 3, 1, 2]


def _grader(cache_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GRADER, *args], capture_output=True, text=True, env=cli_env(cache_dir), cwd=cwd, timeout=600
    )


def _rows(batch: BatchReport) -> list[tuple]:
    return [(e.path, e.status, e.score, e.max_score, e.diagnosis, e.message) for e in batch.submissions]


def _gradebook(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return [{**row, "duration_s": "-"} for row in csv.DictReader(handle)]


def _outputs(report: str, gradebook: str) -> list[str]:
    return ["--format", "json", "--output", report, "--gradebook", gradebook]


@pytest.fixture(scope="module")
def graded_both_ways(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict[str, object]:
    root = tmp_path_factory.mktemp("sharded")
    for student, source in END_TO_END.items():
        (root / "class" / student).mkdir(parents=True)
        (root / "class" / student / "solution.py").write_bytes((SUBMISSIONS / source).read_bytes())
    seed = ["--exercise", "train-eval-dropout"]
    single = _grader(cache_dir, root, "grade", "class", *seed, *_outputs("single.json", "single.csv"))
    shards = [
        _grader(
            cache_dir, root, "grade", "class", *seed, "--shard", f"{i}/3", *_outputs(f"shards/{i}.json", f"{i}.csv")
        )
        for i in (1, 2, 3)
    ]
    files = sorted(str(p.relative_to(root)) for p in (root / "shards").glob("*.json"))
    merged = _grader(cache_dir, root, "merge", *files, *_outputs("merged.json", "merged.csv"))
    return {"root": root, "single": single, "shards": shards, "merged": merged}


@pytest.mark.slow
def test_the_merged_shards_equal_the_single_batch_row_by_row(graded_both_ways: dict) -> None:
    root: Path = graded_both_ways["root"]
    single, shards, merged = graded_both_ways["single"], graded_both_ways["shards"], graded_both_ways["merged"]
    assert single.returncode == 1, single.stderr  # some failed
    assert [shard.returncode for shard in shards] == [1, 1, 1], [shard.stderr for shard in shards]
    assert merged.returncode == single.returncode, merged.stderr
    one = BatchReport.model_validate_json((root / "single.json").read_text(encoding="utf-8"))
    parts = [BatchReport.model_validate_json((root / "shards" / f"{i}.json").read_text()) for i in (1, 2, 3)]
    combined = BatchReport.model_validate_json((root / "merged.json").read_text(encoding="utf-8"))
    assert [len(part.submissions) for part in parts] == [2, 1, 1]  # every shard graded some
    assert [(p.shard.index, p.shard.count, p.shard.exercise) for p in parts if p.shard] == [
        (1, 3, "train-eval-dropout"), (2, 3, "train-eval-dropout"), (3, 3, "train-eval-dropout"),
    ]  # fmt: skip
    assert _rows(combined) == _rows(one)
    assert [e.status for e in one.submissions] == ["passed", "failed", "failed", "error"]
    assert combined.total == one.total == 4 and combined.counts == one.counts and combined.merged_from == 3
    for mine, theirs in zip(combined.submissions, one.submissions, strict=True):  # the full reports too
        if theirs.report is None:
            assert mine.report is None
            continue
        assert mine.report is not None
        assert [(c.id, c.status) for c in mine.report.cases] == [(c.id, c.status) for c in theirs.report.cases]
        assert [d.code for d in mine.report.diagnoses] == [d.code for d in theirs.report.diagnoses]
    assert _gradebook(root / "merged.csv") == _gradebook(root / "single.csv")


@pytest.mark.slow
def test_each_shard_names_its_students_as_the_whole_class_would(graded_both_ways: dict) -> None:
    root: Path = graded_both_ways["root"]
    students = [row["student"] for i in (1, 2, 3) for row in _gradebook(root / f"{i}.csv")]
    assert sorted(students) == sorted(END_TO_END)  # not the file's stem where a shard holds one folder

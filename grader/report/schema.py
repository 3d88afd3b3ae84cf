"""The grading report: the pydantic models every stage hands to the next and every renderer reads.

This module is the contract with CI users. ``grader schema`` prints its JSON Schema, and
``docs/report.schema.json`` is kept equal to it by a test. Add fields freely; renaming or removing one,
or changing what a value means, needs a new ``SCHEMA_VERSION``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.2"  # 1.1: outputs as trees (comparison path, leaves, notes; structure-mismatch)
# 1.2: a batch graded as one shard of a class (BatchReport.shard), and batches merged from shards (merged_from)

ReportStatus = Literal["passed", "failed", "error"]
CaseStatus = Literal["passed", "failed", "error", "skipped"]
# What one comparison found. Five kinds share their string with an engine code (grader/report/codes.py says
# how they relate): the cases of such a kind are grouped under that code.
ComparisonKind = Literal[
    "match", "wrong-type", "shape-mismatch", "dtype-mismatch", "values-mismatch", "too-large", "structure-mismatch"
]
# A number in a report, or the name of a value JSON cannot hold.
Number = float | Literal["nan", "inf", "-inf"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceLine(_Model):
    """One line of the submission, shown to point at the construct a diagnosis is about."""

    line: int = Field(description="1-based line number in the submission.")
    text: str
    column: int | None = Field(default=None, description="1-based column to mark, when one is known.")


class Diagnosis(_Model):
    """A finding about the submission as a whole, with a stable code CI can match on."""

    code: str = Field(description="Stable identifier, for example 'values-mismatch'. Listed in the README.")
    message: str = Field(description="What is wrong, in one or two sentences.")
    hint: str | None = Field(default=None, description="How to move toward a fix.")
    evidence: str | None = Field(default=None, description="What the finding rests on.")
    cases: list[str] = Field(default_factory=list, description="Ids of the cases the finding comes from.")
    lines: list[SourceLine] = Field(default_factory=list, description="Submission lines it points at.")


class Frame(_Model):
    file: str
    line: int | None
    function: str
    code: str


class ErrorInfo(_Model):
    """An exception raised by the submission, with only the frames in the submission's own file."""

    type: str
    message: str
    frames: list[Frame] = Field(default_factory=list)
    raised_in: str | None = Field(
        default=None, description="The library file the exception came out of, when not the submission."
    )


class CapturedText(_Model):
    """What the submission wrote to one stream, sanitised (control characters escaped) and truncated."""

    text: str = ""
    size: int = Field(default=0, description="Bytes written in all, before truncation.")
    truncated: bool = False


class CapturedOutput(_Model):
    stdout: CapturedText = CapturedText()
    stderr: CapturedText = CapturedText()
    limit_reached: bool = Field(default=False, description="Writing stopped at the output size limit.")

    @property
    def empty(self) -> bool:
        return not (self.stdout.size or self.stderr.size)


class ElementRow(_Model):
    """One element of an output, expected beside actual."""

    index: int = Field(description="Flat (C-order) index.")
    expected: Number | None
    actual: Number | None
    abs_error: Number | None = None
    rel_error: Number | None = None
    ok: bool


class Comparison(_Model):
    """How a submission's output measured against the expected output of one case."""

    ok: bool
    kind: ComparisonKind
    message: str
    path: str | None = Field(
        default=None,
        description='For an output that is a tree: the leaf these numbers are about, as `[1]["mean"]`.',
    )
    expected_shape: list[int]
    actual_shape: list[int] | None = None
    expected_dtype: str
    actual_dtype: str | None = None
    actual_type: str | None = Field(default=None, description="Python type of what came back.")
    rtol: float
    atol: float
    scale_atol: float = Field(
        default=0.0,
        description="The rounding term added to atol: 8 x the dtype's epsilon x the largest |expected| of the output.",
    )
    n_elements: int = 0
    n_mismatched: int = 0
    max_abs_error: Number | None = None
    max_rel_error: Number | None = None
    nan_count: int = Field(default=0, description="NaN elements in the actual output.")
    inf_count: int = Field(default=0, description="Infinite elements in the actual output.")
    worst: list[int] = Field(default_factory=list, description="Flat indices of the largest errors.")
    rows: list[ElementRow] = Field(
        default_factory=list,
        description="Elements side by side: all of a short output, an elided selection of a long one.",
    )
    leaves: list[Comparison] = Field(
        default_factory=list,
        description="For an output that is a tree: one comparison per leaf, each with its path (empty for one array).",
    )
    notes: list[str] = Field(
        default_factory=list, description="What was allowed, such as a list compared as the tuple expected."
    )

    def lead_leaf(self) -> Comparison:
        """The comparison whose numbers and rows a report shows: for a tree, its lead leaf (the first failing
        leaf whose values are wrong, else the first failing one)."""
        return next((leaf for leaf in self.leaves if leaf.path == self.path), self)


class CaseResult(_Model):
    id: str
    title: str
    status: CaseStatus
    hidden: bool = False
    fresh: bool = Field(
        default=False, description="Made for the grading's seed by one of the exercise's generators (--seed N)."
    )
    weight: float
    score: float
    inputs: dict[str, str] = Field(description="Each argument, in brief.")
    message: str
    comparison: Comparison | None = None
    error: ErrorInfo | None = None
    output: CapturedOutput = CapturedOutput()
    duration_s: float | None = None


class ExerciseInfo(_Model):
    id: str
    title: str
    entry_point: str


class SubmissionInfo(_Model):
    path: str
    sha256: str | None = None


class Environment(_Model):
    python: str
    platform: str
    grader: str
    jax: str | None = None
    jaxlib: str | None = None
    flax: str | None = None
    numpy: str | None = None
    backend: str | None = Field(default=None, description="JAX backend the reference ran on, e.g. 'cpu'.")
    isolation: str = Field(
        description="How the submission was isolated: 'bwrap' (namespaces, read-only mounts), 'process', or 'not run'."
    )
    isolation_detail: str = Field(default="", description="The isolation in words, with the uid the child ran as.")
    reference_cache: Literal["hit", "miss", "off"] = "off"
    cache_detail: str = Field(
        default="",
        description="Why the caches were off although a cache folder was configured: it could not be created or "
        "written, and the grading went on without it. Empty otherwise.",
    )


class Report(_Model):
    """One grading, as every renderer reads it. Its repr is one line (a notebook shows the return value
    of ``check()`` after the rendered report: not the whole model again)."""

    def __repr__(self) -> str:
        return f"Report(exercise={self.exercise.id!r}, status={self.status!r}, score={self.score:g}/{self.max_score:g})"

    schema_version: str = SCHEMA_VERSION
    exercise: ExerciseInfo
    submission: SubmissionInfo
    status: ReportStatus
    score: float
    max_score: float
    message: str
    seed: int | None = Field(
        default=None,
        description="The seed given with --seed N: the fresh cases (cases[].fresh) were generated from it, and "
        "the same seed always gives the same cases. Null when none was given.",
    )
    cases: list[CaseResult] = Field(default_factory=list)
    diagnoses: list[Diagnosis] = Field(default_factory=list)
    output: CapturedOutput = Field(
        default=CapturedOutput(), description="What the submission printed while it was imported."
    )
    environment: Environment
    duration_s: float = 0.0
    notes: list[str] = Field(
        default_factory=list,
        description="Optional stages that failed and were left out, such as an exercise's analysis of known "
        "mistakes: the grade stands without what they would have added.",
    )

    @property
    def passed(self) -> bool:
        return self.status == "passed"


EntryStatus = Literal["passed", "failed", "error", "skipped", "fault"]


class BatchEntry(_Model):
    """One submission of a batch: its verdict in brief, and its full report when it was graded."""

    path: str = Field(description="The submission file, as found from the paths given.")
    status: EntryStatus = Field(
        description="The report's status (passed, failed, error), or 'skipped' when it could not be graded as "
        "given (unreadable, no exercise could be chosen), or 'fault' when the grader itself failed on it."
    )
    score: float = 0.0
    max_score: float = 0.0
    diagnosis: str | None = Field(default=None, description="The code of the main (first) diagnosis.")
    message: str
    duration_s: float = 0.0
    report_file: str | None = Field(default=None, description="Where --output-dir holds its report.")
    report: Report | None = Field(default=None, description="The full report; absent when skipped or a fault.")
    resumed: bool = Field(
        default=False,
        description="Kept from an earlier run's journal (--resume), not graded again: the same file (sha256), "
        "exercise, seed and grader version. Its duration_s is the earlier grading's.",
    )


class ShardInfo(_Model):
    """The share of a class a batch graded (``grader grade CLASS --shard I/N``), and what ``grader merge``
    checks that the shards of one class agree on."""

    index: int = Field(ge=1, description="Which shard this is, counted from 1 (1 to count).")
    count: int = Field(ge=1, description="How many shards the class was shared out into.")
    submissions: list[str] = Field(
        description="Every submission of the class, as the entries name them, in the order one batch would list "
        "them: each is in exactly one shard (by a hash of its path below the folder they share)."
    )
    exercise: str | None = Field(default=None, description="The --exercise given; null when found from each file.")
    exercises: dict[str, str | None] = Field(
        default_factory=dict,
        description="Each exercise a submission could be graded against (the one --exercise names, else every one "
        "installed) with a digest of its spec, catalog and reference (null where they could not be read).",
    )
    seed: int | None = Field(default=None, description="The --seed given, or null.")
    grader: str = Field(description="The grader's version.")


class BatchReport(_Model):
    """Many submissions graded together (``grader grade PATH...``)."""

    schema_version: str = SCHEMA_VERSION
    kind: Literal["batch"] = "batch"
    total: int = Field(description="Submissions found from the paths given.")
    counts: dict[EntryStatus, int] = Field(description="Finished submissions by status.")
    interrupted: bool = Field(default=False, description="Stopped early (Ctrl-C): only finished ones are listed.")
    isolation: str = Field(description="The isolation every submission ran under.")
    jobs: int = Field(description="Submissions graded at the same time.")
    duration_s: float = 0.0
    submissions: list[BatchEntry] = Field(default_factory=list, description="In the order the paths gave them.")
    shard: ShardInfo | None = Field(
        default=None,
        description="Set by --shard I/N: the share of the class graded (total and submissions are this shard's).",
    )
    merged_from: int | None = Field(
        default=None,
        description="Set by grader merge: how many shards' reports were combined (jobs is then their sum, "
        "duration_s the longest shard's).",
    )

    @property
    def all_passed(self) -> bool:
        """Every submission passed (vacuously so for an empty shard)."""
        passed = self.counts.get("passed", 0)
        return not self.interrupted and self.total == len(self.submissions) and passed == self.total


def _json_schema(model: type[BaseModel], name: str) -> dict:
    schema = model.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:grader:{name}:{SCHEMA_VERSION}"
    return schema


def report_json_schema() -> dict:
    """The JSON Schema of a report, as ``grader schema`` prints it."""
    return _json_schema(Report, "report")


def batch_json_schema() -> dict:
    """The JSON Schema of a batch report, as ``grader schema --batch`` prints it."""
    return _json_schema(BatchReport, "batch")

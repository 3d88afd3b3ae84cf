"""The batch reports of a class's shards combined into the class's batch report (``grader merge``).

Shards are merged only when they are the shards of one grading: the same number of shards, every one of
them once, taken from the same submissions, graded by the same grader version against the same exercises
(spec, catalog and reference) with the same seed, and together holding every submission exactly once.
Anything else is a ``UsageError`` that names the files and what differs. The merged report lists the
submissions in the order one batch of the whole class would.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from grader.errors import UsageError
from grader.report.schema import BatchEntry, BatchReport, ShardInfo

SHOWN = 10  # submissions named one by one in a refusal; the rest counted


@dataclasses.dataclass(frozen=True)
class ShardReport:
    """A shard's batch report and the file it came from (named in refusals)."""

    name: str
    batch: BatchReport

    @property
    def shard(self) -> ShardInfo:
        assert self.batch.shard is not None  # checked by ``merge_shards`` before it is used
        return self.batch.shard

    @property
    def label(self) -> str:
        return f"{self.name} (shard {self.shard.index}/{self.shard.count})"


def read_batch_report(path: Path) -> BatchReport:
    """A batch report from a file (``grader grade PATHS --format json``, a shard's, ``grader merge``'s),
    validated; a usage error that says what is wrong with it otherwise."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    try:
        return BatchReport.model_validate_json(text)
    except ValidationError as exc:
        if _one_submission(text):
            raise UsageError(
                f"{path} is one submission's report, not a batch's "
                "(grader grade PATHS --format json --output BATCH.json writes a batch's)"
            ) from exc
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "the document"
        raise UsageError(f"{path}: not a grader batch report ({where}: {problem['msg']})") from exc


def _one_submission(text: bytes) -> bool:
    try:
        document = json.loads(text)
    except ValueError:
        return False
    return isinstance(document, dict) and "exercise" in document and "submissions" not in document


def read_shard_report(path: Path) -> ShardReport:
    """A shard's batch report from a file (``grader grade ... --shard I/N --format json``), validated."""
    return ShardReport(str(path), read_batch_report(path))


def merge_shards(shards: Sequence[ShardReport]) -> BatchReport:
    """The class's batch report from its shards' reports; raises ``UsageError`` naming the files and what
    differs when they are not the shards of one grading."""
    if not shards:
        raise UsageError("give the batch reports of a class's shards to merge")
    _refuse_unsharded(shards)
    for what, value in _AGREED:
        _refuse_disagreement(shards, what, value)
    _refuse_other_classes(shards)
    _refuse_bad_indices(shards)
    entries = _entries_by_path(shards)
    return _merged(shards, entries)


def _refuse_unsharded(shards: Sequence[ShardReport]) -> None:
    plain = [shard.name for shard in shards if shard.batch.shard is None]
    if plain:
        raise UsageError(f"not a shard's batch report (graded without --shard I/N): {', '.join(plain)}")


def _exercises(shard: ShardInfo) -> str:
    return ", ".join(f"{name} {(digest or 'unreadable')[:12]}" for name, digest in sorted(shard.exercises.items()))


# What every shard of one grading has in common, and how a refusal shows it.
_AGREED: tuple[tuple[str, Callable[[ShardInfo], str]], ...] = (
    ("number of shards", lambda shard: str(shard.count)),
    ("grader version", lambda shard: shard.grader),
    ("--exercise", lambda shard: shard.exercise or "(none: found from each file)"),
    ("exercises (spec, catalog or reference changed between gradings)", _exercises),
    ("--seed", lambda shard: "(none)" if shard.seed is None else str(shard.seed)),
)


def _refuse_disagreement(shards: Sequence[ShardReport], what: str, value: Callable[[ShardInfo], str]) -> None:
    groups: dict[str, list[str]] = {}
    for shard in shards:
        groups.setdefault(value(shard.shard), []).append(shard.name)
    if len(groups) > 1:
        told = "; ".join(f"{', '.join(names)}: {shown}" for shown, names in groups.items())
        raise UsageError(f"the shards differ in their {what}: {told}")


def _refuse_other_classes(shards: Sequence[ShardReport]) -> None:
    """Every shard was taken from the same submissions, named alike (the same command on the same files)."""
    first = shards[0]
    for shard in shards[1:]:
        if shard.shard.submissions == first.shard.submissions:
            continue
        ours, theirs = set(first.shard.submissions), set(shard.shard.submissions)
        only = [f"{path} only in {first.name}" for path in first.shard.submissions if path not in theirs]
        only += [f"{path} only in {shard.name}" for path in shard.shard.submissions if path not in ours]
        told = _listed(only) if only else "the same submissions in another order"
        raise UsageError(
            f"the shards were taken from different submissions (the class changed between gradings, or it was "
            f"given by other paths): {first.name} has {len(ours)}, {shard.name} {len(theirs)}: {told}"
        )


def _refuse_bad_indices(shards: Sequence[ShardReport]) -> None:
    count = shards[0].shard.count
    seen: dict[int, str] = {}
    for shard in shards:
        index = shard.shard.index
        if index > count:
            raise UsageError(f"{shard.name}: shard {index}/{count} is out of range")
        if index in seen:
            raise UsageError(f"shard {index}/{count} is given twice: {seen[index]} and {shard.name}")
        seen[index] = shard.name
    missing = [index for index in range(1, count + 1) if index not in seen]
    if missing:
        given = ", ".join(str(index) for index in sorted(seen))
        raise UsageError(
            f"missing shard{'s' if len(missing) > 1 else ''} {_listed([str(i) for i in missing])} of {count} "
            f"(given: {given})"
        )


def _entries_by_path(shards: Sequence[ShardReport]) -> dict[str, tuple[BatchEntry, ShardReport]]:
    """Every entry by its path: each in the class, none twice, none missing."""
    klass = set(shards[0].shard.submissions)
    found: dict[str, tuple[BatchEntry, ShardReport]] = {}
    for shard in shards:
        for entry in shard.batch.submissions:
            if entry.path not in klass:
                raise UsageError(f"{shard.label}: {entry.path} is not among the submissions of the class")
            if entry.path in found:
                first = found[entry.path][1]
                raise UsageError(f"{entry.path} is in two shards: {first.label} and {shard.label}")
            found[entry.path] = (entry, shard)
    missing = [path for path in shards[0].shard.submissions if path not in found]
    if missing:
        stopped = [shard.label for shard in shards if shard.batch.interrupted]
        why = f"; interrupted: {', '.join(stopped)} (grade it again, with --resume to keep what finished)"
        raise UsageError(
            f"{len(missing)} submission{'s' if len(missing) > 1 else ''} of the class in no shard's report: "
            f"{_listed(missing)}{why if stopped else ''}"
        )
    return found


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _merged(shards: Sequence[ShardReport], entries: dict[str, tuple[BatchEntry, ShardReport]]) -> BatchReport:
    ordered = [entries[path][0] for path in shards[0].shard.submissions]
    counts: dict[str, int] = {}
    for entry in ordered:
        counts[entry.status] = counts.get(entry.status, 0) + 1
    isolations = sorted({shard.batch.isolation for shard in shards if shard.batch.submissions})
    return BatchReport(
        total=len(ordered),
        counts=counts,  # type: ignore[arg-type]
        isolation=", ".join(isolations) or shards[0].batch.isolation,
        jobs=sum(shard.batch.jobs for shard in shards),
        duration_s=max(shard.batch.duration_s for shard in shards),
        submissions=ordered,
        merged_from=len(shards),
    )


__all__ = ["ShardReport", "merge_shards", "read_batch_report", "read_shard_report"]

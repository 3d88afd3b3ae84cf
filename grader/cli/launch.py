"""The ``grader`` command's entry point (``grader``, ``python -m grader``), which gives ``grader grade FILE``
its head start (``pipeline/headstart.py``): a first look at the command line, before typer is imported,
starts the file's child, so that its imports of jax and flax overlap typer's loading and parsing, the
grader's imports and the exercise's loading.

The look is a guess, as the head start's look at the specs is. It knows grade's options by name
(``VALUE_OPTIONS``, ``FLAGS``, ``BATCH_ONLY``: a test pins them to the command's), gives up on anything
else, and ``grade`` uses the child only where the options typer parsed are the ones it was started for.
Every other command goes straight to ``app``. Nothing here imports typer, numpy or pydantic.
"""

from __future__ import annotations

import gc
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from grader.cli.exits import EXIT_INTERRUPTED, interrupted_by, say, signals_ignored

if TYPE_CHECKING:
    from grader.sandbox.start import SpawnedChild

# grade's options as the first look knows them, with the name the head start reads each by ("": not read).
VALUE_OPTIONS = {
    "--exercise": "exercise",
    "-e": "exercise",
    "--isolation": "isolation",
    "--format": "",
    "-f": "",
    "--output": "",
    "-o": "",
    "--report": "",
    "--seed": "",
    "--jobs": "",
    "-j": "",
}
FLAGS = {"--no-cache": "no_cache", "--color": "", "--no-color": "", "--resume": ""}
BATCH_ONLY = frozenset({"--gradebook", "--output-dir", "--class-report", "--shard"})  # a batch: no head start


class Ahead(NamedTuple):
    """A child started from the first look, and what for: the file, --exercise, the cache folder and
    --isolation as the look read them."""

    child: SpawnedChild
    started_for: tuple[Path, str | None, Path | None, str | None]


class Look(NamedTuple):
    """What the first look found: grade's one file, the values of the options the head start reads, and
    the flags among them that were given."""

    path: Path
    values: dict[str, str]
    flags: frozenset[str]


def first_look(args: list[str]) -> Look | None:
    """What grade's arguments, as written, say of the one file it grades; None where they name several
    files or none, an option only a batch has, or anything this look does not know (``--help``, short
    options run together, a misspelling: typer will say)."""
    paths: list[str] = []
    values: dict[str, str] = {}
    flags: set[str] = set()
    tokens = iter(args)
    for token in tokens:
        if token == "--":
            paths.extend(tokens)
            break
        if not token.startswith("-") or token == "-":
            paths.append(token)
            continue
        name, equals, value = token.partition("=") if token.startswith("--") else (token, "", "")
        if name in VALUE_OPTIONS:
            if not equals:
                following = next(tokens, None)
                if following is None:
                    return None
                value = following
            values[VALUE_OPTIONS[name]] = value
        elif name in FLAGS and not equals:
            flags.add(FLAGS[name])
        else:
            return None
    values.pop("", None)
    flags.discard("")
    return Look(Path(paths[0]), values, frozenset(flags)) if len(paths) == 1 else None


def look_ahead(args: list[str]) -> Ahead | None:
    """The head start for grade's arguments ``args``, where the first look finds one file (a path that
    cannot even be looked at, too long or behind a closed folder, is left to grade to report)."""
    look = first_look(args)
    try:
        if look is None or not look.path.is_file():
            return None
    except OSError:
        return None
    from grader.pipeline.headstart import head_start
    from grader.pipeline.recipe import default_cache_dir

    exercise, isolation = look.values.get("exercise"), look.values.get("isolation")
    cache_dir = None if "no_cache" in look.flags else default_cache_dir()
    child = head_start(look.path, exercise_id=exercise, cache_dir=cache_dir, isolation=isolation)
    return None if child is None else Ahead(child, (look.path, exercise, cache_dir, isolation))


def main() -> None:
    """Runs the command. For ``grade``, SIGTERM and SIGHUP end it as Ctrl-C does from the first look on
    (a cancelled CI job, a closed terminal: the child ended, its folder removed, exit 130), and a child
    started ahead is ended when the command ends, unless its grading used it."""
    try:
        if sys.argv[1:2] == ["grade"]:
            _grade()
        else:
            from grader.cli.app import main as run

            run()
    finally:
        # Everything left lives until the process exits: frozen, the interpreter's last collections
        # (tens of milliseconds with the grader's modules loaded) need not walk it.
        gc.freeze()


def _grade() -> None:
    ahead = None
    with interrupted_by(signal.SIGTERM, signal.SIGHUP):
        try:
            ahead = look_ahead(sys.argv[2:])
            from grader.cli.app import main as run

            run(ahead)
        except KeyboardInterrupt:  # before typer runs, or one that typer lets through
            say("interrupted")
            raise SystemExit(EXIT_INTERRUPTED) from None
        finally:
            if ahead is not None:
                with signals_ignored(signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # ending it anyway
                    ahead.child.discard()  # does nothing to a child its grading used

"""The class report: one self-contained HTML page drawn from a finished ``BatchReport``, for the teacher.

It shows where the class stands and which mistakes are common: the distribution of scores; the diagnoses
ranked by how many submissions have each, with what they mean, the hint, and who has them; what could not
be graded (errors, skipped, faults) apart from those; the pass rate of every case; a table of the students;
and each student's own report, as the terminal shows it. ``summarise`` works the numbers out (a pure
function of the batch); ``render_class_report`` lays them out.

The page needs nothing outside itself: its styles are inline, its charts inline SVG (``grader.render.charts``),
no script, font or image is fetched. Each student's report is embedded, shown when its link is followed
(CSS ``:target``), so that the page is one file to hand on or archive and no link of it can break. Everything
a submission wrote (paths, messages, captured output) is escaped. A status is shown by its symbol and word,
its colour only added.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from html import escape

from grader.render.batch import student_names, totals_line
from grader.render.charts import bar_chart, score_histogram
from grader.render.html import BACKGROUND, FOREGROUND, MUTED, PALETTE, css_colour, report_html
from grader.render.style import LOOKS, look
from grader.report.codes import info
from grader.report.schema import BatchEntry, BatchReport, Report

TITLE = "Class report"
CHARTED = 15  # the diagnoses in the chart; the table lists them all
RAN = ("passed", "failed")  # a report whose cases ran: its diagnoses are the class' mistakes


@dataclasses.dataclass(frozen=True)
class Student:
    """One submission of the batch, numbered in the batch's order."""

    number: int
    entry: BatchEntry
    name: str  # the folder below the class folder, or the file's stem (as in the gradebook)
    label: str  # how a list of students names it: its name, or its path where others share the name

    @property
    def anchor(self) -> str | None:
        """The id of its own report on the page; None where it has none (skipped, fault)."""
        return f"report-{self.number:03d}" if self.entry.report is not None else None

    @property
    def percent(self) -> float | None:
        """Its score in percent of the maximum; None where it was not graded."""
        if self.entry.report is None:
            return None
        return 100 * self.entry.score / self.entry.max_score if self.entry.max_score else 0.0


@dataclasses.dataclass(frozen=True)
class Finding:
    """A diagnosis code of one exercise and the submissions that have it."""

    exercise: str
    code: str
    title: str | None  # the engine's short title; None for an exercise's own code
    explanation: str  # the message most of them got
    hint: str | None
    students: tuple[Student, ...]


@dataclasses.dataclass(frozen=True)
class CaseRate:
    """How the submissions graded against one case of one exercise did on it."""

    exercise: str
    case_id: str
    hidden: bool
    fresh: bool
    statuses: Counter[str]  # passed, failed, error, skipped: submissions each

    @property
    def graded(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.statuses["passed"] / self.graded if self.graded else 0.0


@dataclasses.dataclass(frozen=True)
class ClassSummary:
    """What the page shows, worked out from the batch."""

    batch: BatchReport
    students: tuple[Student, ...]
    exercises: dict[str, str]  # id: title, as they first appear
    mistakes: tuple[Finding, ...]  # of submissions whose cases ran, most common first
    errors: tuple[Finding, ...]  # of submissions that could not be graded (status error), by their lead code
    skipped: tuple[Student, ...]
    faults: tuple[Student, ...]
    cases: dict[str, tuple[CaseRate, ...]]  # by exercise, in the reports' order

    @property
    def percents(self) -> list[float]:
        return [percent for student in self.students if (percent := student.percent) is not None]


def summarise(batch: BatchReport) -> ClassSummary:
    """The numbers of the page, from the batch alone."""
    names = student_names([entry.path for entry in batch.submissions])
    shared = {name for name, count in Counter(names.values()).items() if count > 1}
    students = tuple(
        Student(n, entry, names[entry.path], entry.path if names[entry.path] in shared else names[entry.path])
        for n, entry in enumerate(batch.submissions, start=1)
    )
    graded = [(student, student.entry.report) for student in students if student.entry.report is not None]
    exercises = {report.exercise.id: report.exercise.title for _student, report in graded}
    ran = [(student, report) for student, report in graded if report.status in RAN]
    not_run = [(student, report) for student, report in graded if report.status not in RAN]
    return ClassSummary(
        batch=batch,
        students=students,
        exercises=exercises,
        mistakes=_findings(ran, lead_only=False),
        errors=_findings(not_run, lead_only=True),
        skipped=tuple(s for s in students if s.entry.status == "skipped"),
        faults=tuple(s for s in students if s.entry.status == "fault"),
        cases=_case_rates(report for _student, report in graded),
    )


def _findings(graded: Sequence[tuple[Student, Report]], *, lead_only: bool) -> tuple[Finding, ...]:
    """Each (exercise, code) and the submissions that have it (once each), most submissions first."""
    found: dict[tuple[str, str], list[tuple[Student, str, str | None]]] = {}
    for student, report in graded:
        diagnoses = report.diagnoses[:1] if lead_only else report.diagnoses
        seen: set[str] = set()
        for diagnosis in diagnoses:
            if diagnosis.code not in seen:
                seen.add(diagnosis.code)
                found.setdefault((report.exercise.id, diagnosis.code), []).append(
                    (student, diagnosis.message, diagnosis.hint)
                )
        if lead_only and not diagnoses:  # an error no diagnosis names: its message stands for one
            found.setdefault((report.exercise.id, report.status), []).append((student, report.message, None))
    ranked = sorted(found.items(), key=lambda item: (-len(item[1]), item[0][1], item[0][0]))
    return tuple(_finding(exercise, code, had) for (exercise, code), had in ranked)


def _finding(exercise: str, code: str, had: list[tuple[Student, str, str | None]]) -> Finding:
    messages = Counter(message for _student, message, _hint in had)
    hints = Counter(hint for _student, _message, hint in had if hint)
    known = info(code)
    return Finding(
        exercise=exercise,
        code=code,
        title=known.title if known is not None else None,
        explanation=messages.most_common(1)[0][0],
        hint=hints.most_common(1)[0][0] if hints else None,
        students=tuple(student for student, _message, _hint in had),
    )


def _case_rates(reports: Iterable[Report]) -> dict[str, tuple[CaseRate, ...]]:
    rates: dict[str, dict[str, CaseRate]] = {}
    for report in reports:
        cases = rates.setdefault(report.exercise.id, {})
        for case in report.cases:
            rate = cases.setdefault(case.id, CaseRate(report.exercise.id, case.id, case.hidden, case.fresh, Counter()))
            rate.statuses[case.status] += 1
    return {exercise: tuple(cases.values()) for exercise, cases in rates.items()}


def render_class_report(batch: BatchReport) -> str:
    """The class report of ``batch``: one HTML page that needs nothing outside itself."""
    summary = summarise(batch)
    several = len(summary.exercises) > 1
    body = "\n".join(
        (
            _overview(summary),
            _scores(summary),
            _mistakes(summary, several=several),
            _not_graded(summary, several=several),
            _cases(summary),
            _students(summary, several=several),
            _reports(summary),
        )
    )
    heading = f"{TITLE}: {', '.join(summary.exercises)}" if summary.exercises else TITLE
    return _PAGE.format(title=escape(heading), style=_style(), body=body)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{style}
</style>
</head>
<body>
<header>
<h1>{title}</h1>
<nav aria-label="Sections"><a href="#scores">Scores</a> <a href="#misconceptions">Misconceptions</a> \
<a href="#not-graded">Not graded</a> <a href="#cases">Cases</a> <a href="#students">Students</a></nav>
</header>
<main>
{body}
</main>
</body>
</html>
"""


def _style() -> str:
    """The page's style sheet: one column that reads on a phone and a wide screen, tables that scroll
    sideways rather than squeeze, each status' colour (beside its symbol and word), and a print layout."""
    statuses = "\n".join(f".s-{name} {{ color: {css_colour(status.colour)}; }}" for name, status in LOOKS.items())
    return _CSS.format(
        background=_hex(BACKGROUND),
        text=_hex(FOREGROUND),
        muted=_hex(MUTED),
        link=PALETTE.ansi_colors[4].hex,
        statuses=statuses,
    )


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


_CSS = """*, *::before, *::after {{ box-sizing: border-box; }}
html {{ -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }}
body {{ margin: 0 auto; max-width: 90rem; padding: 0 1rem 3rem; background: {background}; color: {text};
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }}
h1 {{ font-size: 1.6rem; margin: 1.2rem 0 0.4rem; overflow-wrap: anywhere; }}
h2 {{ font-size: 1.3rem; margin: 2rem 0 0.6rem; padding-top: 0.6rem; border-top: 1px solid #d0d7de; }}
h3 {{ font-size: 1.1rem; margin: 1.4rem 0 0.4rem; overflow-wrap: anywhere; }}
a {{ color: {link}; }}
nav {{ display: flex; flex-wrap: wrap; gap: 0.3rem 1rem; }}
code {{ font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.92em; }}
.muted {{ color: {muted}; }}
.counts {{ display: flex; flex-wrap: wrap; gap: 0.4rem 1.4rem; list-style: none; padding: 0; margin: 0.6rem 0; }}
.counts li {{ font-size: 1.1rem; }}
.scroll {{ overflow-x: auto; max-width: 100%; }}
table {{ border-collapse: collapse; margin: 0.4rem 0 1rem; }}
caption {{ text-align: left; padding: 0 0.6rem; }}
th, td {{ text-align: left; vertical-align: top; padding: 0.35rem 0.6rem; border-bottom: 1px solid #d0d7de; }}
th {{ background: #f6f8fa; white-space: nowrap; }}
td.num, th.num {{ text-align: right; white-space: nowrap; }}
td.path {{ overflow-wrap: anywhere; min-width: 12rem; }}
td.text {{ min-width: 14rem; max-width: 30rem; overflow-wrap: anywhere; }}
td code {{ white-space: nowrap; }}
.status {{ font-weight: 600; white-space: nowrap; }}
{statuses}
figure {{ margin: 0.6rem 0 1rem; }}
figcaption {{ color: {muted}; }}
svg.chart {{ display: block; width: 100%; min-width: 28rem; max-width: 48rem; height: auto; }}
svg.chart * {{ stroke-linejoin: round; stroke-linecap: butt; }}
ul.students {{ margin: 0; padding-left: 1.1rem; }}
.report {{ display: none; }}
.report:target {{ display: block; }}
pre.terminal {{ margin: 0.4rem 0; padding: 0.6rem; border: 1px solid #d0d7de; background: {background};
  color: {text}; font: 13px/1.35 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; width: max-content; }}
.warning {{ border-left: 4px solid currentColor; padding-left: 0.6rem; }}
@media (min-width: 60rem) {{ body {{ padding: 0 2rem 3rem; }} }}
@media print {{
  body {{ max-width: none; padding: 0; font-size: 10pt; }}
  nav, .back {{ display: none; }}
  .scroll {{ overflow: visible; }}
  a {{ color: inherit; text-decoration: none; }}
  h2, h3 {{ break-after: avoid; }}
  tr, figure {{ break-inside: avoid; }}
  td.text {{ max-width: none; }}
  pre.terminal {{ font-size: 8pt; width: auto; white-space: pre-wrap; }}
}}"""


def _status(status: str) -> str:
    shown = look(status)
    return f'<span class="status s-{status}">{shown.symbol} {shown.word}</span>'


def _link(student: Student, text: str | None = None) -> str:
    """The student's path (or ``text``), linking to its own report where it has one; the path as its title
    where the text is not the path."""
    shown = escape(text if text is not None else student.entry.path)
    title = f' title="{escape(student.entry.path)}"' if text not in (None, student.entry.path) else ""
    return f'<a href="#{student.anchor}"{title}>{shown}</a>' if student.anchor else shown


def _table(head: Sequence[tuple[str, str]], rows: Iterable[Sequence[tuple[str, str]]], *, caption: str) -> str:
    """A table in a box that scrolls sideways: the header's and each row's cells as (class, HTML)."""
    header = "".join(f'<th scope="col" class="{kind}">{text}</th>' for kind, text in head)
    body = "\n".join(
        "<tr>" + "".join(f'<td class="{kind}">{html}</td>' for kind, html in row) + "</tr>" for row in rows
    )
    return (
        f'<div class="scroll"><table>\n<caption class="muted">{escape(caption)}</caption>\n'
        f"<thead><tr>{header}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>"
    )


def _overview(summary: ClassSummary) -> str:
    batch = summary.batch
    order = list(LOOKS)
    finished = sorted((item for item in batch.counts.items() if item[1]), key=lambda item: order.index(item[0]))
    counts = "".join(f"<li>{_status(status)}: {count}</li>" for status, count in finished)
    percents = summary.percents
    scores = (
        f"<p>Scores: median {statistics.median(percents):.0f}%, mean {statistics.mean(percents):.0f}% "
        f"over {len(percents)} graded submissions.</p>"
        if percents
        else "<p>No submission was graded.</p>"
    )
    warning = (
        '<p class="warning s-error"><strong>! Interrupted:</strong> only the submissions that finished are shown.</p>'
        if batch.interrupted
        else ""
    )
    return (
        f'<section id="overview" aria-label="Overview">\n<p>{escape(totals_line(batch))}</p>\n'
        f'<ul class="counts">{counts}</ul>\n{scores}\n{warning}</section>'
    )


def _scores(summary: ClassSummary) -> str:
    percents = summary.percents
    head = '<section id="scores">\n<h2>Scores</h2>\n'
    if not percents:
        return head + "<p>No submission was graded.</p>\n</section>"
    left_out = len(summary.students) - len(percents)
    note = f" {left_out} not graded (skipped or a fault) are left out." if left_out else ""
    chart = score_histogram(percents, chart_id="chart-scores", title="Submissions by score, in bands of 10%")
    caption = (
        f"How many of the {len(percents)} graded submissions scored in each band of 10 percentage points "
        f"(100% in the last).{escape(note)}"
    )
    return f"{head}{_figure(chart, caption)}\n</section>"


def _figure(chart: str, caption: str) -> str:
    """A chart, in a box that scrolls sideways where the screen is too narrow for its text to be read, and
    its caption (HTML)."""
    return f'<figure><div class="scroll">{chart}</div>\n<figcaption>{caption}</figcaption></figure>'


def _diagnosis(finding: Finding, *, several: bool) -> str:
    exercise = f'<br><span class="muted">{escape(finding.exercise)}</span>' if several else ""
    return f"<code>{escape(finding.code)}</code>{exercise}"


def _meaning(finding: Finding) -> str:
    title = f"<strong>{escape(finding.title)}</strong><br>" if finding.title else ""
    return f"{title}{escape(finding.explanation)}"


def _who(students: Sequence[Student]) -> str:
    items = "".join(f"<li>{_link(student, student.label)}</li>" for student in students)
    return f'<ul class="students">{items}</ul>'


def _mistakes(summary: ClassSummary, *, several: bool) -> str:
    head = (
        '<section id="misconceptions">\n<h2>Misconceptions: the diagnoses, most common first</h2>\n'
        "<p>The diagnoses of the submissions whose cases ran, each counted once per submission.</p>\n"
    )
    findings = summary.mistakes
    if not findings:
        return head + "<p>No submission whose cases ran has a diagnosis.</p>\n</section>"
    ran = sum(1 for student in summary.students if student.entry.status in RAN)
    shown = findings[:CHARTED]
    labels = [f"{f.code} ({f.exercise})" if several else f.code for f in shown]
    counts = [len(f.students) for f in shown]
    chart = bar_chart(
        labels,
        counts,
        [str(count) for count in counts],
        limit=max(counts),
        axis="submissions",
        whole=True,
        chart_id="chart-mistakes",
        title="Submissions with each diagnosis, most common first",
    )
    more = f" The {len(findings) - CHARTED} others are in the table." if len(findings) > CHARTED else ""
    rows = [
        (
            ("num", str(rank)),
            ("", _diagnosis(finding, several=several)),
            ("num", f"{len(finding.students)} of {ran}"),
            ("text", _meaning(finding)),
            ("text", escape(finding.hint or "")),
            ("path", _who(finding.students)),
        )
        for rank, finding in enumerate(findings, start=1)
    ]
    table = _table(
        [("num", "#"), ("", "diagnosis"), ("num", "submissions"), ("", "what it means"), ("", "hint"), ("", "who")],
        rows,
        caption=f"Each diagnosis of the {ran} submissions whose cases ran, by how many have it.",
    )
    caption = f"Submissions with each diagnosis (the {len(shown)} most common).{more}"
    return f"{head}{_figure(chart, caption)}\n{table}\n</section>"


def _not_graded(summary: ClassSummary, *, several: bool) -> str:
    parts = [
        '<section id="not-graded">\n<h2>Not graded</h2>\n'
        "<p>Apart from the mistakes above: submissions whose cases could not run (errors), that were not "
        "graded as given (skipped), or on which the grader itself failed (faults).</p>"
    ]
    if not (summary.errors or summary.skipped or summary.faults):
        parts.append("<p>None: every submission was graded.</p>")
    if summary.errors:
        rows = [
            (
                ("", _diagnosis(finding, several=several)),
                ("num", str(len(finding.students))),
                ("text", _meaning(finding)),
                ("text", escape(finding.hint or "")),
                ("path", _who(finding.students)),
            )
            for finding in summary.errors
        ]
        head = [("", "diagnosis"), ("num", "submissions"), ("", "what it means"), ("", "hint"), ("", "who")]
        parts.append(f"<h3>{_status('error')}: the cases could not run</h3>")
        parts.append(_table(head, rows, caption="By the diagnosis that leads each report."))
    for status, students, what in (
        ("skipped", summary.skipped, "not graded as given"),
        ("fault", summary.faults, "the grader failed on them"),
    ):
        if students:
            why = [(("path", escape(s.entry.path)), ("text", escape(s.entry.message))) for s in students]
            parts.append(f"<h3>{_status(status)}: {what}</h3>")
            parts.append(_table([("", "submission"), ("", "why")], why, caption=f"{len(students)} {status}."))
    return "\n".join(parts) + "\n</section>"


def _case_label(rate: CaseRate) -> str:
    return rate.case_id + (" (hidden)" if rate.hidden else "") + (" (fresh)" if rate.fresh else "")


def _cases(summary: ClassSummary) -> str:
    parts = [
        '<section id="cases">\n<h2>Cases</h2>\n<p>The share of the graded submissions that passed each case, '
        "hidden cases included. A case not run is one the submission never reached (its file could not be "
        "graded, or an earlier case stopped the run).</p>"
    ]
    if not summary.cases:
        parts.append("<p>No submission was graded.</p>")
    for number, (exercise, rates) in enumerate(summary.cases.items(), start=1):
        title = summary.exercises.get(exercise, "")
        notes = [f"{rate.rate:.0%} ({rate.statuses['passed']}/{rate.graded})" for rate in rates]
        chart = bar_chart(
            [_case_label(rate) for rate in rates],
            [100 * rate.rate for rate in rates],
            notes,
            limit=100,
            axis="passed (percent of the graded submissions)",
            chart_id=f"chart-cases-{number}",
            title=f"Pass rate of each case of {exercise}",
        )
        rows = [
            (
                ("", f"<code>{escape(rate.case_id)}</code>"),
                ("", "hidden" if rate.hidden else ("fresh" if rate.fresh else "")),
                *(("num", str(rate.statuses[status])) for status in ("passed", "failed", "error", "skipped")),
                ("num", f"{rate.rate:.0%}"),
            )
            for rate in rates
        ]
        head = [
            ("", "case"),
            ("", ""),
            *(("num", _status(s)) for s in ("passed", "failed", "error")),
            ("num", _status("skipped") + " (not run)"),
            ("num", "pass rate"),
        ]
        parts.append(f"<h3><code>{escape(exercise)}</code> {escape(title)}</h3>")
        parts.append(_figure(chart, f"Pass rate of each case of {escape(exercise)}."))
        parts.append(_table(head, rows, caption=f"Each case of {exercise}: submissions by the case's status."))
    return "\n".join(parts) + "\n</section>"


def _score(entry: BatchEntry) -> str:
    if entry.report is None:
        return "-"
    percent = 100 * entry.score / entry.max_score if entry.max_score else 0.0
    return f"{entry.score:g}/{entry.max_score:g} ({percent:.0f}%)"


def _lead(entry: BatchEntry) -> str:
    report = entry.report
    if report is None:
        return escape(entry.message)
    if not report.diagnoses:
        return ""
    code = report.diagnoses[0].code
    known = info(code)
    return f"<code>{escape(code)}</code>" + (f" {escape(known.title)}" if known is not None else "")


def _students(summary: ClassSummary, *, several: bool) -> str:
    head = '<section id="students">\n<h2>Students</h2>\n'
    if not summary.students:
        return head + "<p>No submission finished.</p>\n</section>"
    rows = [
        (
            ("num", str(student.number)),
            ("", escape(student.name)),
            ("path", _link(student)),
            *(
                (("", f"<code>{escape(student.entry.report.exercise.id)}</code>" if student.entry.report else ""),)
                if several
                else ()
            ),
            ("", _status(student.entry.status)),
            ("num", _score(student.entry)),
            ("text", _lead(student.entry)),
        )
        for student in summary.students
    ]
    columns = [
        ("num", "#"),
        ("", "student"),
        ("", "submission"),
        *((("", "exercise"),) if several else ()),
        ("", "status"),
        ("num", "score"),
        ("", "lead diagnosis"),
    ]
    table = _table(columns, rows, caption="Each submission in the batch's order: follow its path for its own report.")
    return f"{head}{table}\n</section>"


def _reports(summary: ClassSummary) -> str:
    parts = [
        '<section id="reports">\n<h2>Reports</h2>\n<p class="muted">Each submission\'s own report, as the '
        "terminal shows it, opens here when its path is followed.</p>"
    ]
    for student in summary.students:
        report = student.entry.report
        if report is None or student.anchor is None:
            continue
        parts.append(
            f'<article class="report" id="{student.anchor}" aria-label="Report of {escape(student.entry.path)}">\n'
            f"<h3>{escape(student.entry.path)} {_status(report.status)}</h3>\n"
            f'<p class="back"><a href="#students">Back to the students</a></p>\n'
            f'<div class="scroll">{report_html(report)}</div>\n</article>'
        )
    return "\n".join(parts) + "\n</section>"

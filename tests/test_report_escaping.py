"""What a hostile submission writes reaches every format as text: escaped in the report (controls, bidi
controls, noncharacters), valid XML in JUnit, literal text in GitHub's Markdown summary, and never more
than one workflow command per line. Reports are built here directly: no child is started."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest
from lxml import etree
from markdown_it import MarkdownIt

from grader.pipeline.grading import sanitize
from grader.render.batch import render_batch_summary
from grader.render.github import render_annotations, render_summary
from grader.render.junit import render_junit, render_junit_batch
from grader.report.schema import (
    BatchEntry,
    BatchReport,
    CapturedOutput,
    CapturedText,
    CaseResult,
    Diagnosis,
    Environment,
    ErrorInfo,
    ExerciseInfo,
    Frame,
    Report,
    SubmissionInfo,
)
from tests.test_formats import WORKFLOW_COMMAND

BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c"
NONCHARACTERS = "\ufffe\uffff\ufdd0\ufdef\U0001fffe\U0010ffff"


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("\x1b[2J", "\\x1b[2J"),
        ("a\x00b\x7f\x9b", "a\\x00b\\x7f\\x9b"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("\udcff.py", "\\udcff.py"),
        ("PASSED\u202e dessap", "PASSED\\u202e dessap"),
        ("\u2066x\u2069", "\\u2066x\\u2069"),
        ("\u061c\u200e\u200f", "\\u061c\\u200e\\u200f"),
        ("\ufeff\u200b\u2060", "\\ufeff\\u200b\\u2060"),
        ("\u2028\u2029", "\\u2028\\u2029"),
        ("\uffff\ufffe\ufdd0\ufdef", "\\uffff\\ufffe\\ufdd0\\ufdef"),
        ("\U0001fffe\U0010ffff", "\\U0001fffe\\U0010ffff"),
        ("\U000e0041", "\\U000e0041"),  # a tag character
        ("été ✅ 数 \u200d \u200c", "été ✅ 数 \u200d \u200c"),  # text, emoji and the joiners stay
    ],
)
def test_sanitize_escapes_what_hides_or_reorders_text(text: str, escaped: str) -> None:
    assert sanitize(text) == escaped


def _hidden(char: str) -> bool:
    point = ord(char)
    noncharacter = 0xFDD0 <= point <= 0xFDEF or point & 0xFFFE == 0xFFFE
    category = unicodedata.category(char)
    joiner = char in "\u200c\u200d"
    return noncharacter or category in ("Cc", "Cs", "Zl", "Zp") or (category == "Cf" and not joiner)


def test_no_format_control_noncharacter_or_control_survives_sanitize() -> None:
    everything = "".join(chr(p) for p in range(sys.maxunicode + 1) if _hidden(chr(p)) and chr(p) not in "\t\n")
    out = sanitize(everything)
    assert not [c for c in out if _hidden(c) and c not in "\t\n"]
    assert out.isascii()


HOSTILE = [
    "**ALL 20 CASES PASSED ✅**",
    "[x](http://e)",
    "![i](http://e/i.png)",
    "<img src=x>",
    "<a href='http://e'>click</a>",
    "_em_ ~~gone~~ `code` $x^2$",
    "| fake | cell |",
    "# heading\n- item\r\n> quote",
    "&lt;b&gt; \\|**x**",
    "http://e.com www.e.com a@b.co",
]
RAW = "\x00\x1b[31m\uffff\ufffe\ud800\u202e\x0b"  # what XML 1.0 cannot hold, and what sanitize escapes


def _report(text: str, path: str = "class/a/solution.py") -> Report:
    error = ErrorInfo(
        type=f"Error{text}", message=text, frames=[Frame(file=path, line=3, function=text, code=text)], raised_in=text
    )
    case = CaseResult(
        id="first",
        title=text,
        status="error",
        weight=1.0,
        score=0.0,
        inputs={"x": text},
        message=text,
        error=error,
        output=CapturedOutput(stdout=CapturedText(text=text, size=len(text)), stderr=CapturedText(text=text, size=1)),
    )
    skipped = case.model_copy(update={"id": "second", "status": "skipped", "error": None})
    return Report(
        exercise=ExerciseInfo(id="toy-scale", title=text, entry_point="scale"),
        submission=SubmissionInfo(path=path),
        status="failed",
        score=0.0,
        max_score=2.0,
        message=text,
        cases=[case, skipped],
        diagnoses=[Diagnosis(code="exception", message=text, hint=text, evidence=text, cases=["first"])],
        environment=Environment(python="3", platform=text, grader="0", isolation="process"),
    )


def _batch(text: str) -> BatchReport:
    path = f"class/{text}/solution.py"
    graded = BatchEntry(path=path, status="failed", max_score=2.0, diagnosis="exception", message=text)
    return BatchReport(
        total=2,
        counts={"failed": 1, "fault": 1},
        isolation="process",
        jobs=1,
        submissions=[
            graded.model_copy(update={"report": _report(text, path)}),
            BatchEntry(path=path, status="fault", message=text),
        ],
    )


@pytest.mark.parametrize("text", [RAW, *HOSTILE, "".join(HOSTILE) + RAW])
def test_junit_is_valid_xml_whatever_the_report_holds(text: str) -> None:
    report = _report(text, path=f"class/{text}/solution.py")
    for document in (render_junit(report), render_junit_batch(_batch(text))):
        root = etree.fromstring(document.encode("utf-8"))  # lxml refuses what XML 1.0 does not allow
        assert root.tag == "testsuites"
    suite = etree.fromstring(render_junit(report).encode("utf-8")).find("testsuite")
    assert suite is not None and [case.get("name") for case in suite.findall("testcase")] == ["first", "second"]
    if text == RAW:  # shown escaped, not dropped: a name, a message and what was printed
        assert suite.get("name") == "toy-scale: class/\\u0000\\u001b[31m\\uffff\\ufffe\\ud800\u202e\\u000b/solution.py"
        assert suite.find("testcase/error").get("message").startswith("[exception] \\u0000\\u001b")
        assert suite.find("testcase/system-out").text == "\\u0000\\u001b[31m\\uffff\\ufffe\\ud800\u202e\\u000b"


def _html(markdown: str) -> str:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)


def _tags(html: str, tag: str) -> int:
    return len(re.findall(rf"<{tag}[\s>]", html))


def _as_html_text(text: str) -> str:
    """``text`` as a Markdown renderer writes literal text into HTML."""
    text = " ".join(text.splitlines())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


@pytest.mark.parametrize("text", HOSTILE)
def test_github_summary_renders_learner_text_as_text(text: str) -> None:
    report = _report(text, path=f"class/{text}/solution.py")
    html = _html(render_summary(report))
    # Ours: the status and each diagnosis's code in bold, the file name in a code span, one table.
    assert _tags(html, "strong") == 1 + len(report.diagnoses)
    assert _tags(html, "code") == 1
    for tag in ("em", "a", "img", "del", "s", "h1", "h2", "blockquote"):
        assert _tags(html, tag) == 0, tag
    assert _tags(html, "li") == len(report.diagnoses)
    assert _tags(html, "table") == 1 and _tags(html, "tr") == 1 + len(report.cases)
    assert all(row.count("<td") == 3 for row in html.split("<tr>")[2:])
    assert f"<td>{_as_html_text(text)}</td>" in html  # the case's message, whole, as text
    assert f"<code>class/{' '.join(text.splitlines())}/solution.py</code>" in html.replace("&quot;", '"').replace(
        "&lt;", "<"
    ).replace("&gt;", ">").replace("&amp;", "&")


@pytest.mark.parametrize("text", HOSTILE)
def test_batch_summary_renders_learner_text_as_text(text: str) -> None:
    batch = _batch(text)
    html = _html(render_batch_summary(batch))
    assert _tags(html, "strong") == _tags(html, "em") == _tags(html, "a") == _tags(html, "img") == 0
    assert _tags(html, "del") == _tags(html, "s") == 0
    assert _tags(html, "code") == len(batch.submissions)  # each file name, whole, in a code span
    assert _tags(html, "tr") == 1 + len(batch.submissions)
    assert all(row.count("<td") == 4 for row in html.split("<tr>")[2:])
    assert f"<code>{_as_html_text(batch.submissions[0].path)}</code>" in html
    assert f"<td>{_as_html_text(text)}</td>" in html  # the fault's message


def test_annotations_stay_one_command_per_line() -> None:
    text = "evil\n::error file=x.py,line=1::All cases passed\r%0A::notice::hi, there: ok"
    report = _report(text, path="class/a,b:c/solution.py")
    lines = render_annotations(report).splitlines()
    assert len(lines) == len(report.diagnoses) + 1
    assert all(WORKFLOW_COMMAND.match(line) for line in lines)
    head, message = lines[0].split("::", 2)[1:]
    assert head == "error file=class/a%2Cb%3Ac/solution.py,title=exception%3A toy-scale"
    assert message.startswith("evil%0A::error file=x.py,line=1::All cases passed%0D%250A::notice::hi, there: ok")

"""The class report: one self-contained HTML page from a batch (``grader grade CLASS --class-report FILE``,
``grader class-report BATCH.json -o FILE``).

Its numbers, links, escaping, colours and self-containment are checked everywhere by parsing the page with
the standard library. A real browser (the system's Chromium, driven by Playwright) loads it at a phone's and
a wide screen's width where Chromium is installed, and the test says why it skips where it is not.

The batch is built once for the module from four bundled submissions graded together, and entries made from
their reports (a second and third submission with the same mistake, one of them with markup in its path and
messages, one skipped, one fault), so that every section has something to show for four gradings.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grader.cli.app import app
from grader.pipeline.batch import entry_from_report
from grader.pipeline.grading import GradeOptions
from grader.render.charts import score_bands
from grader.render.classreport import render_class_report
from grader.render.html import BACKGROUND, FOREGROUND, contrast_ratio, css_colour
from grader.render.style import LOOKS
from grader.report.schema import BatchEntry, BatchReport, Report
from tests.conftest import ROOT, SUBMISSIONS, cli_env, grade_as_batch

CHROMIUM = Path("/usr/bin/chromium")
WIDTHS = (390, 1280)  # a phone's, a wide screen's (CSS pixels)
HOSTILE = '<script>document.title="owned"</script><img src=x onerror=alert(1)>'
GRADED = ("correct.py", "wrong_inverted_flag.py", "wrong_returns_variables.py", "broken_syntax.py")
AA = 4.5  # WCAG 2 AA, normal text


# -- the batch, built once -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reports(cache_dir: Path) -> dict[str, Report]:
    paths = [SUBMISSIONS / name for name in GRADED]
    graded = grade_as_batch(paths, GradeOptions(cache_dir=cache_dir))
    return {path.name: graded[path] for path in paths}


def _hostile(report: Report) -> Report:
    """The report with markup where a submission puts text: its path, each diagnosis' message and hint,
    what it printed."""
    diagnoses = [d.model_copy(update={"message": f"{d.message} {HOSTILE}", "hint": HOSTILE}) for d in report.diagnoses]
    output = report.output.model_copy(
        update={"stdout": report.output.stdout.model_copy(update={"text": HOSTILE, "size": len(HOSTILE)})}
    )
    submission = report.submission.model_copy(update={"path": f"class/{HOSTILE}/solution.py"})
    return report.model_copy(update={"diagnoses": diagnoses, "output": output, "submission": submission})


@pytest.fixture(scope="module")
def batch(reports: dict[str, Report]) -> BatchReport:
    inverted = reports["wrong_inverted_flag.py"]
    graded = [
        ("ada", reports["correct.py"]),
        ("bo", inverted),
        ("cy", inverted),
        (HOSTILE, _hostile(inverted)),
        ("di", reports["wrong_returns_variables.py"]),
        ("ed", reports["broken_syntax.py"]),
    ]
    entries = [entry_from_report(Path(f"class/{name}/solution.py"), report, None) for name, report in graded]
    entries += [
        BatchEntry(path="class/fa/solution.py", status="skipped", message="a symbolic link: not graded"),
        BatchEntry(path="class/gu/solution.py", status="fault", message="internal error: the reference failed"),
    ]
    counts = Counter(entry.status for entry in entries)
    return BatchReport(total=len(entries), counts=counts, isolation="process", jobs=2, submissions=entries)


@pytest.fixture(scope="module")
def page(batch: BatchReport) -> str:
    return render_class_report(batch)


@pytest.fixture(scope="module")
def tree(page: str) -> Node:
    return parse(page)


# -- a small DOM from html.parser -------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def walk(self):
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        return [
            node
            for node in self.walk()
            if (tag is None or node.tag == tag) and all(node.attrs.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]

    def by_id(self, ident: str) -> Node:
        found = self.find_all(id=ident)
        assert len(found) == 1, f"{len(found)} elements with id {ident!r}"
        return found[0]

    @property
    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text for child in self.children)

    def rows(self) -> list[list[Node]]:
        """The cells of each body row of the first table below this node."""
        body = self.find_all("tbody")[0]
        return [[cell for cell in row.children if isinstance(cell, Node)] for row in body.find_all("tr")]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {name: value or "" for name, value in attrs}, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, {name: value or "" for name, value in attrs}, self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None and node.parent is not None, f"</{tag}> closes nothing"
        self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse(page: str) -> Node:
    builder = _Builder()
    builder.feed(page)
    builder.close()
    assert builder.current is builder.root, f"<{builder.current.tag}> is never closed"
    return builder.root


def _words(node: Node) -> str:
    return _words_of(node.text)


def _words_of(text: str) -> str:
    return " ".join(text.split())


# -- what the page shows ----------------------------------------------------------------------------------


def test_the_page_has_every_section_and_a_chart_for_each_distribution(tree: Node) -> None:
    for section in ("overview", "scores", "misconceptions", "not-graded", "cases", "students", "reports"):
        assert tree.by_id(section).tag == "section"
    for section in ("scores", "misconceptions", "cases"):
        charts = tree.by_id(section).find_all("svg")
        assert len(charts) == 1, section
        assert charts[0].attrs["role"] == "img"
        label = charts[0].attrs["aria-labelledby"]
        assert tree.by_id(label).tag == "title" and tree.by_id(label).text
    assert [node.attrs["content"] for node in tree.find_all("meta", name="viewport")] == [
        "width=device-width, initial-scale=1"
    ]


def test_the_scores_count_every_graded_submission(tree: Node, batch: BatchReport) -> None:
    graded = [entry for entry in batch.submissions if entry.report is not None]
    caption = _words(tree.by_id("scores").find_all("figcaption")[0])
    assert f"of the {len(graded)} graded submissions" in caption
    assert f"{len(batch.submissions) - len(graded)} not graded (skipped or a fault) are left out" in caption
    overview = _words(tree.by_id("overview"))
    assert f"over {len(graded)} graded submissions" in overview
    assert all(f"{LOOKS[s].symbol} {LOOKS[s].word}: {n}" in overview for s, n in batch.counts.items())


@pytest.mark.parametrize(
    ("percents", "bands"),
    [
        ([], [0] * 10),
        ([0, 9.99, 10, 50, 99.9, 100], [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]),
        ([100, 100, 0], [1, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
    ],
)
def test_score_bands_put_full_marks_in_the_last(percents: list[float], bands: list[int]) -> None:
    assert score_bands(percents) == bands


def test_the_diagnoses_are_ranked_by_how_many_submissions_have_each(tree: Node, batch: BatchReport) -> None:
    ran = [e for e in batch.submissions if e.report is not None and e.report.status in ("passed", "failed")]
    expected = Counter(code for e in ran if e.report for code in {d.code for d in e.report.diagnoses})
    rows = tree.by_id("misconceptions").rows()
    shown = [(_words(row[1]), _words(row[2])) for row in rows]
    assert shown == [
        (code, f"{count} of {len(ran)}") for code, count in sorted(expected.items(), key=lambda c: (-c[1], c[0]))
    ]
    assert shown[0] == ("deterministic-inverted", f"3 of {len(ran)}")
    assert [int(_words(row[0])) for row in rows] == list(range(1, len(rows) + 1))
    # who has it: links to the reports of exactly those submissions
    who = [link.attrs["href"] for link in rows[0][5].find_all("a")]
    having = [
        n
        for n, e in enumerate(batch.submissions, 1)
        if e.report and any(d.code == "deterministic-inverted" for d in e.report.diagnoses)
    ]
    assert who == [f"#report-{n:03d}" for n in having]
    # the explanation and the hint, as the reports give them
    inverted = batch.submissions[1].report
    assert inverted is not None
    assert _words_of(inverted.diagnoses[0].message) in _words(rows[0][3])
    assert _words(rows[0][4]) == _words_of(inverted.diagnoses[0].hint or "")


def test_errors_skipped_and_faults_are_apart_from_failures(tree: Node) -> None:
    mistakes = {_words(row[1]) for row in tree.by_id("misconceptions").rows()}
    assert "syntax-error" not in mistakes
    apart = tree.by_id("not-graded")
    headings = [_words(h) for h in apart.find_all("h3")]
    assert headings == [
        "! error: the cases could not run",
        "- skipped: not graded as given",
        "‼ fault: the grader failed on them",
    ]
    tables = apart.find_all("table")
    errors = [[_words(cell) for cell in row] for row in Node.rows(tables[0])]
    assert [row[:2] for row in errors] == [["syntax-error", "1"]]
    assert "the file does not parse" in errors[0][2] and "ed" in errors[0][4]
    assert [_words(row[0]) for row in Node.rows(tables[1])] == ["class/fa/solution.py"]
    assert [_words(row[1]) for row in Node.rows(tables[2])] == ["internal error: the reference failed"]


def test_each_case_has_its_pass_rate_over_the_graded_submissions(tree: Node, batch: BatchReport) -> None:
    reports = [e.report for e in batch.submissions if e.report is not None]
    rows = {_words(row[0]): [_words(cell) for cell in row[1:]] for row in tree.by_id("cases").rows()}
    cases = reports[0].cases
    assert list(rows) == [case.id for case in cases]
    assert any(case.hidden for case in cases), "the batch should hold hidden cases"
    for case in cases:
        statuses = Counter(c.status for r in reports for c in r.cases if c.id == case.id)
        kind, passed, failed, error, skipped, rate = rows[case.id]
        assert kind == ("hidden" if case.hidden else "")
        assert [int(passed), int(failed), int(error), int(skipped)] == [
            statuses[s] for s in ("passed", "failed", "error", "skipped")
        ]
        assert rate == f"{statuses['passed'] / len(reports):.0%}"


def test_each_student_links_to_their_own_report(tree: Node, batch: BatchReport) -> None:
    rows = tree.by_id("students").rows()
    assert len(rows) == len(batch.submissions)
    for row, entry in zip(rows, batch.submissions, strict=True):
        status = LOOKS[entry.status]
        assert _words(row[3]) == f"{status.symbol} {status.word}"  # never colour alone
        links = row[2].find_all("a")
        if entry.report is None:
            assert links == [] and _words(row[5]) == entry.message
            continue
        assert _words(row[2]) == entry.path
        report = tree.by_id(links[0].attrs["href"].removeprefix("#"))
        assert report.attrs["class"] == "report"
        terminal = report.find_all("pre", class_="terminal")
        assert len(terminal) == 1
        text = terminal[0].text
        # The path as the terminal shows it, folded over lines inside the panel's borders however long
        # it is (a checkout at a long path gives a long one).
        assert _unfolded(entry.report.submission.path) in _unfolded(text)
        assert f"{entry.report.status.upper()}" in text and f"score {entry.score:g}/{entry.max_score:g}" in text
    anchors = {node.attrs["id"] for node in tree.by_id("reports").find_all("article")}
    assert anchors == {f"report-{n:03d}" for n, e in enumerate(batch.submissions, 1) if e.report is not None}


def _unfolded(text: str) -> str:
    return "".join(ch for ch in text if not ch.isspace() and ch != "│")


def test_every_link_on_the_page_leads_somewhere_on_it(tree: Node) -> None:
    ids = {node.attrs["id"] for node in tree.walk() if "id" in node.attrs}
    hrefs = [node.attrs["href"] for node in tree.find_all("a")]
    assert hrefs and all(href.startswith("#") and href[1:] in ids for href in hrefs)


def test_text_from_submissions_is_inert(page: str, tree: Node) -> None:
    assert tree.find_all("script") == [] and tree.find_all("img") == []
    assert not [node for node in tree.walk() if any(name.startswith("on") for name in node.attrs)]
    assert "<script>" not in page and "<img" not in page
    hostile_path = f"class/{HOSTILE}/solution.py"
    assert hostile_path in [_words(row[2]) for row in tree.by_id("students").rows()]
    report = tree.by_id("report-004")
    assert HOSTILE in report.find_all("pre")[0].text  # what it printed, as text
    assert hostile_path in _words(report.find_all("h3")[0])
    who = [_words(link) for link in tree.by_id("misconceptions").rows()[0][5].find_all("a")]
    assert '<script>document.title="owned"<' in who  # its name (the folder below the class's), as text


def test_the_page_needs_nothing_outside_itself(page: str, tree: Node) -> None:
    for tag in ("script", "link", "iframe", "img", "object", "embed", "image", "base", "audio", "video", "frame"):
        assert tree.find_all(tag) == [], tag
    references = [
        value
        for node in tree.walk()
        for name, value in node.attrs.items()
        if name in ("src", "href", "xlink:href", "data", "action", "formaction", "poster", "srcset", "background")
    ]
    assert references and all(value.startswith("#") for value in references)
    style = "".join(node.text for node in tree.find_all("style"))
    inline = " ".join(node.attrs.get("style", "") for node in tree.walk())
    assert "@import" not in style and "url(" not in style
    assert not re.search(r"url\((?!#)", inline)
    assert "http://" not in page and "https://" not in page


def test_every_colour_meets_wcag_aa_on_its_background(tree: Node) -> None:
    for name, status in LOOKS.items():
        assert contrast_ratio(_rgb(css_colour(status.colour)), BACKGROUND) >= AA, name
    spans = [span for pre in tree.find_all("pre", class_="terminal") for span in pre.find_all("span")]
    assert spans
    seen = set()
    for span in spans:
        style = dict(
            (key.strip(), value.strip()) for key, _, value in (r.partition(":") for r in span.attrs["style"].split(";"))
        )
        colour = _rgb(style["color"]) if "color" in style else FOREGROUND
        background = _rgb(style["background-color"]) if "background-color" in style else BACKGROUND
        seen.add((colour, background))
    low = [(c, b, round(contrast_ratio(c, b), 2)) for c, b in seen if contrast_ratio(c, b) < AA]
    assert low == []
    assert len(seen) > 3  # the reports are coloured: statuses, a diagnosis, code


@pytest.mark.parametrize(
    ("first", "second", "ratio"),
    [
        ((0, 0, 0), (255, 255, 255), 21.0),
        ((255, 255, 255), (255, 255, 255), 1.0),
        ((118, 118, 118), (255, 255, 255), 4.54),
    ],
)
def test_contrast_ratio(first: tuple[int, int, int], second: tuple[int, int, int], ratio: float) -> None:
    assert round(contrast_ratio(first, second), 2) == ratio


def _rgb(colour: str) -> tuple[int, int, int]:
    assert re.fullmatch(r"#[0-9a-f]{6}", colour), colour
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


def test_a_batch_with_nothing_finished_still_makes_a_page() -> None:
    empty = BatchReport(total=3, counts={}, interrupted=True, isolation="process", jobs=1)
    tree = parse(render_class_report(empty))
    assert tree.find_all("svg") == []
    assert "No submission finished." in _words(tree.by_id("students"))
    assert "Interrupted" in _words(tree.by_id("overview"))


# -- the commands -----------------------------------------------------------------------------------------


def test_class_report_draws_a_batch_report_written_earlier(tmp_path: Path, batch: BatchReport, page: str) -> None:
    source = tmp_path / "batch.json"
    source.write_text(batch.model_dump_json(), encoding="utf-8")
    target = tmp_path / "out" / "class.html"
    result = CliRunner().invoke(app, ["class-report", str(source), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == page


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot be read"),
        ("not json", "not a grader batch report"),
        ('{"kind": "batch"}', "not a grader batch report (total: Field required)"),
        ("REPORT", "is one submission's report"),
    ],
)
def test_class_report_refuses_what_is_not_a_batch_report(
    tmp_path: Path, reports: dict[str, Report], content: str | None, says: str
) -> None:
    source = tmp_path / "batch.json"
    if content is not None:
        text = reports["correct.py"].model_dump_json() if content == "REPORT" else content
        source.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["class-report", str(source), "-o", str(tmp_path / "class.html")])
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert not (tmp_path / "class.html").exists()


@pytest.mark.parametrize("command", ["class-report", "grade"])
def test_without_matplotlib_either_way_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: BatchReport, command: str
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    source = tmp_path / "batch.json"
    source.write_text(batch.model_dump_json(), encoding="utf-8")
    target = tmp_path / "class.html"
    args = [str(source), "-o", str(target)] if command == "class-report" else [str(SUBMISSIONS / "correct.py")]
    args += ["--class-report", str(target)] if command == "grade" else []
    result = CliRunner().invoke(app, [command, *args])
    assert result.exit_code == 2, result.output
    assert "pip install 'jax-grader[class-report]'" in result.output
    assert "Traceback" not in result.output and not target.exists()


def test_grade_with_a_class_report_grades_even_one_file_as_a_batch(tmp_path: Path, cache_dir: Path) -> None:
    target = tmp_path / "class.html"
    command = [sys.executable, "-m", "grader", "grade", str(SUBMISSIONS / "broken_syntax.py"), "--format", "json"]
    result = subprocess.run(
        [*command, "--class-report", str(target)], capture_output=True, text=True, env=cli_env(cache_dir), cwd=ROOT
    )
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["kind"] == "batch"
    tree = parse(target.read_text(encoding="utf-8"))
    assert [_words(row[0]) for row in tree.by_id("not-graded").rows()] == ["syntax-error"]


def test_both_ways_are_in_the_help_and_the_readme() -> None:
    result = CliRunner().invoke(app, ["class-report", "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
    assert "--class-report" in CliRunner().invoke(app, ["grade", "--help"]).output
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = _words_of(readme.split("### The class report", 1)[1].split("\n### ", 1)[0])
    for text in ("--class-report FILE.html", "grader class-report BATCH.json --output FILE.html", "[class-report]"):
        assert text in section


def test_grading_loads_no_plotting_library() -> None:
    code = (
        "import sys, grader.cli.app, grader.cli.runs, grader.cli.outputs, grader.render.classreport; "
        "print('matplotlib' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "False"


# -- in a real browser ------------------------------------------------------------------------------------


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_chromium_shows_the_page_on_a_phone_and_a_wide_screen(tmp_path: Path, page: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (the test extra)")
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    path = tmp_path / "class.html"
    path.write_text(page, encoding="utf-8")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            for width in WIDTHS:
                tab = browser.new_page(viewport={"width": width, "height": 900}, device_scale_factor=1)
                problems: list[str] = []
                tab.on("console", lambda m, p=problems: p.append(m.text) if m.type == "error" else None)
                tab.on("pageerror", lambda e, p=problems: p.append(str(e)))
                outside: list[str] = []
                tab.route(
                    "**/*",
                    lambda r, o=outside: (
                        r.continue_() if r.request.url.startswith("file:") else (o.append(r.request.url), r.abort())
                    ),
                )
                tab.goto(path.as_uri())
                assert problems == [] and outside == []
                assert tab.title().startswith("Class report")
                # the page itself never scrolls sideways: wide tables and charts scroll in their own boxes
                assert tab.evaluate("document.documentElement.scrollWidth") <= width
                shot = tab.screenshot(full_page=True, path=str(tmp_path / f"class-{width}.png"))
                assert _png_size(shot)[0] == width and len(shot) > 10_000
                # a student's link opens their report, and only theirs
                tab.click("#students a[href='#report-002']")
                assert tab.is_visible("#report-002 pre.terminal") and not tab.is_visible("#report-001")
                assert problems == [] and outside == []
                tab.close()
        finally:
            browser.close()

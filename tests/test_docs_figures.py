"""The docs hold each figure once: every measured figure the README quotes is on docs/results.md
or docs/performance.md, every docs page the project names exists and is in the index, each
notebook record says it is dated, and no page counts internal rounds instead of dates."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FIGURE_PAGES = (DOCS / "results.md", DOCS / "performance.md")

NUMBER = r"(?<![\w.,])(\d[\d,]*(?:\.\d+)?)"
# What counts as a measured figure in prose: a metric with 3-4 decimals (0.1192), a rate
# (3,990 users/s) and a latency (21 ms). Settings and counts (64 KiB, 500 entries) are not.
FIGURES = {
    "decimal": re.compile(r"(?<![\w.,])(\d\.\d{3,4})(?![\d.])"),
    "rate": re.compile(NUMBER + r" ((?:users|sequences|requests|req|items|targets|tokens)/s)\b"),
    "latency": re.compile(NUMBER + r" (ms)\b"),
}


def prose(text: str) -> str:
    """Markdown without its fenced code blocks and bold marks."""
    return re.sub(r"```.*?```", "", text, flags=re.S).replace("**", "")


def figures(text: str) -> list[str]:
    """Every measured figure quoted in `text`'s prose, as written ("0.1192", "3,990 users/s")."""
    found = []
    for kind, pattern in FIGURES.items():
        for match in pattern.finditer(prose(text)):
            found.append(match.group(1) if kind == "decimal" else " ".join(match.groups()))
    return found


def on_pages(figure: str, pages: str) -> bool:
    """Whether the pages hold `figure` as a whole number (0.1192 is not in 0.11920 or 10.1192)."""
    number, _, unit = figure.partition(" ")
    pattern = r"(?<![\w.,])" + re.escape(number) + r"(?![\d]|[.,]\d)"
    if unit:
        pattern += r"\s+" + re.escape(unit)
    return re.search(pattern, pages) is not None


def missing_figures(readme: str) -> list[str]:
    pages = "\n".join(prose(page.read_text()) for page in FIGURE_PAGES)
    return [figure for figure in figures(readme) if not on_pages(figure, pages)]


def test_every_figure_the_readme_quotes_is_on_results_or_performance():
    readme = (ROOT / "README.md").read_text()
    quoted = figures(readme)
    assert {"0.1236", "0.0995", "0.1880"} <= set(quoted), quoted  # the extraction still works
    assert missing_figures(readme) == []


def test_a_readme_figure_the_pages_do_not_hold_is_caught():
    readme = (ROOT / "README.md").read_text()
    changed = readme.replace("0.1236", "0.1235", 1)
    changed += "\nA new claim: 12,345 users/s, then 987 ms at the median.\n"
    assert changed != readme
    assert missing_figures(changed) == ["0.1235", "12,345 users/s", "987 ms"]


def project_texts() -> dict[Path, str]:
    paths = [ROOT / "README.md", *DOCS.rglob("*.md")]
    for folder in ("src", "tests", "benchmarks"):
        paths += (ROOT / folder).rglob("*.py")
    out = ROOT / "benchmarks" / "out"  # ignored: results, and the peers' virtual environments
    paths = [path for path in paths if not path.is_relative_to(out)]
    return {path: path.read_text() for path in paths}


def test_every_docs_page_the_project_names_exists():
    named = {}
    for path, text in project_texts().items():
        for page in re.findall(r"\bdocs/[\w./-]*\w\.(?:md|png)\b", text):
            named.setdefault(ROOT / page, path)
        if path.is_relative_to(DOCS):  # links and notebook records named from inside docs/
            for page in re.findall(r"\]\(([\w./-]+\.(?:md|png))\)", text):
                named.setdefault(path.parent / page, path)
            for record in re.findall(r"\b(20\d\d-\d\d-\d\d-[\w-]+\.(?:md|png))\b", text):
                named.setdefault(DOCS / "notebook" / record, path)
    absent = {str(page.relative_to(ROOT)): str(by.relative_to(ROOT))
              for page, by in named.items() if not page.resolve().is_file()}
    assert absent == {}, "page named -> by"


def test_the_index_lists_every_page():
    index = (DOCS / "README.md").read_text()
    linked = {(DOCS / target).resolve() for target in re.findall(r"\]\(([\w./-]+)\)", index)}
    pages = {page.resolve() for page in DOCS.rglob("*.md")} - {(DOCS / "README.md").resolve()}
    assert sorted(str(page.relative_to(DOCS)) for page in pages - linked) == []


def test_each_notebook_record_says_when_it_was_measured_and_that_it_goes_stale():
    records = sorted((DOCS / "notebook").glob("*.md"))
    assert records
    for record in records:
        date = re.match(r"(20\d\d-\d\d-\d\d)-", record.name)
        assert date, record.name
        opening = re.sub(r"\s*\n>?\s*", " ", "\n".join(record.read_text().split("\n\n", 2)[:2]))
        assert opening.startswith(f"# {date.group(1)}"), record.name
        assert "not kept up to date" in opening, record.name
        assert re.search(r"\bcommits? [0-9a-f]{7}\b", opening), record.name


def test_no_internal_round_numbers_only_dates_and_commits():
    counted = re.compile(r"(?<![-\w])(?:session|round)s?[ -]\d", re.I)
    found = {str(path.relative_to(ROOT)): counted.findall(text)
             for path, text in project_texts().items() if counted.search(text)}
    assert found == {}


def test_the_docs_name_no_path_of_a_particular_machine():
    texts = {path: text for path, text in project_texts().items() if path.suffix == ".md"}
    found = {str(path.relative_to(ROOT)): re.findall(r"(?<![\w.])/(?:work|tmp|root)/\S*", text)
             for path, text in texts.items()}
    assert {path: paths for path, paths in found.items() if paths} == {}

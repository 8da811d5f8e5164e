"""The README's performance tables are the ones rendered from the committed benchmark CSVs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "benchmarks"


def test_table_md_is_rendered_from_the_committed_csvs(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import render_table

    assert render_table.render(RESULTS) == (RESULTS / "table.md").read_text(encoding="utf-8")


def test_readme_shows_exactly_the_rendered_tables():
    table = (RESULTS / "table.md").read_text(encoding="utf-8")
    assert table in (ROOT / "README.md").read_text(encoding="utf-8")

import base64
import re

from evaluate.test_tables import make_run, make_summary
from matplotlib.figure import Figure

from brainuad.evaluate.report import figure_data_uri, render_report
from brainuad.evaluate.runs import summarise
from brainuad.evaluate.tables import build_tables

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def images(page):
    return re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)


def test_report_embeds_figures_and_tables_and_loads_nothing_else():
    summary = make_summary(examples=True, sweep=True)
    tables = build_tables(summary)
    page = render_report(summary, tables)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    found = images(page)
    # Examples: 2 models x 2 sets; FROC; Dice histograms; intensity histograms of model A; the sweep.
    assert len(found) == 4 + 1 + 1 + 1 + 1
    assert all(base64.b64decode(data).startswith(PNG_SIGNATURE) for data in found)
    for table in tables:
        assert f"<caption>{table.title}</caption>" in page
    assert "Table 3: Segmentation (threshold: val-dice)" in page and "BraTS21 (T2)" in page
    assert "LPIPS skipped: no --lpips-weights given" in page
    assert "<b>val-dice</b> (headline)" in page
    assert "Dice against t_test" in page and "Lesion detection (FROC)" in page
    for external in ("http://", "https://", "<script", "<link", "@import", "src=\"file"):
        assert external not in page


def test_report_without_reconstructions_or_sweep():
    summary = summarise([make_run("B", 0, [0.3, 0.4], reconstruction=False, examples=True)])
    page = render_report(summary, build_tables(summary))
    assert len(images(page)) == 2 + 1 + 1  # examples of two sets, FROC, Dice histograms
    assert "Intensity histograms" not in page and "Dice against t_test" not in page and "Table 2:" not in page


def test_figure_data_uri_is_a_png():
    figure = Figure(figsize=(1, 1))
    figure.subplots().plot([0, 1], [1, 0])
    uri = figure_data_uri(figure)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]).startswith(PNG_SIGNATURE)

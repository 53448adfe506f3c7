"""The paper's published rows beside the measured ones."""

from __future__ import annotations

from brainuad.evaluate.statistics import mean_std
from brainuad.evaluate.tables import Cell, Column, Row, Table
from brainuad.experiment.report import beside_paper


def _table(key, columns, rows):
    return Table(key, "T", ("Model", "Folds"), tuple(columns), tuple(rows), ())


def test_table3_rows_print_the_published_means():
    columns = [Column("BraTS21 (T2)", "Dice [%] ↑", 100.0, 2, "higher"),
               Column("MSLUB (T2)", "AUPRC [%] ↑", 100.0, 2, "higher"),
               Column("BraTS21 (T2)", "AUPRC pooled [%] ↑", 100.0, 2, "higher")]
    measured = Row(("cDDPM", "2"), tuple(Cell(mean_std([0.4, 0.5])) for _ in columns))
    other = Row(("Mine", "2"), tuple(Cell(mean_std([0.1, 0.2])) for _ in columns))
    table = beside_paper(_table("table3-val-dice", columns, [measured, other]), {"cDDPM": "DDPM"})
    assert table is not None and table.key == "table3-val-dice-beside-paper"
    labels = [row.labels for row in table.rows]
    assert labels == [("cDDPM", "measured, 2 fold(s)"), ("cDDPM", "paper: DDPM"), ("Mine", "measured, 2 fold(s)")]
    paper = table.rows[1]
    assert [cell.text(column) for cell, column in zip(paper.cells, columns)] == ["44.25", "6.36", "–"]
    assert table.rows[0].cells[0].text(columns[0]) == "45.00 ± 7.07"
    assert "Behrendt" in table.notes[0]


def test_table2_rows_print_mean_and_std():
    columns = [Column("IXI (T2)", "SSIM [%] ↑", 100.0, 2, "higher"), Column("IXI (T2)", "KLD ↓", 1.0, 3, "lower"),
               Column("WMH (T1)", "l1-ratio ↑", 1.0, 2, "higher")]
    row = Row(("DDPM + ENS", "5"), tuple(Cell(mean_std([0.9, 0.95])) for _ in columns))
    table = beside_paper(_table("table2", columns, [row]), {"DDPM + ENS": "DDPM + ENS"})
    assert table is not None
    texts = [cell.text(column) for cell, column in zip(table.rows[1].cells, columns)]
    assert texts == ["93.96 ± 0.37", "–", "3.16 ± 0.15"]


def test_no_published_value_in_the_columns_gives_no_table():
    columns = [Column("IXI (T2)", "KLD ↓", 1.0, 3, "lower")]
    row = Row(("DDPM", "1"), (Cell(mean_std([1.0])),))
    assert beside_paper(_table("table2", columns, [row]), {"DDPM": "DDPM"}) is None
    assert beside_paper(_table("table2", columns, [row]), {}) is None

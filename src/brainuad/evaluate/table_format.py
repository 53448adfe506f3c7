"""Tables ready to render: columns, cells, rows, the significance behind the marks, and the
renderings as Markdown, CSV, LaTeX and HTML (:class:`Table`).

:mod:`~brainuad.evaluate.tables` builds the paper's tables from results into these types. A
cell holds a mean ± std over folds (:class:`~brainuad.evaluate.statistics.MeanStd`) or a mean
with a bootstrap interval over volumes (:class:`~brainuad.evaluate.bootstrap.Interval`).
"""

from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import dataclass
from typing import Literal, TypeAlias

from brainuad.evaluate.bootstrap import Interval
from brainuad.evaluate.statistics import MeanStd, PermutationTestResult

__all__ = ["Better", "Cell", "Column", "Comparison", "PairTest", "Row", "Table"]

Better: TypeAlias = Literal["higher", "lower"]


@dataclass(frozen=True)
class Column:
    """A table column.

    Attributes:
        group: the spanning header (a data set, e.g. ``BraTS21 (T2)``).
        title: the metric with its unit and direction, e.g. ``Dice [%] ↑``.
        scale: display unit per raw unit (100 for %, 1000 for e-3).
        decimals: decimals shown.
        better: "higher" or "lower" (best and significance), or None.
    """

    group: str
    title: str
    scale: float = 1.0
    decimals: int = 2
    better: Better | None = None

    @property
    def name(self) -> str:
        return f"{self.group} {self.title}"


@dataclass(frozen=True)
class Cell:
    """One model's value in one column.

    Attributes:
        value: over the folds, in raw units (None: not measured for this model).
        difference: the mean's difference to a reference row in raw units (Table 4), or None.
        best: the best mean of the column.
        significant: better than every other model with p < ALPHA.
        interval: a mean with its bootstrap interval, shown instead of ``value`` (interval tables).
    """

    value: MeanStd | None
    difference: float | None = None
    best: bool = False
    significant: bool = False
    interval: Interval | None = None

    def text(self, column: Column) -> str:
        """``mean ± std`` (mean alone for one fold) in display units, or ``mean [low, high]`` for an
        interval, ``–`` when missing; the difference in brackets; no markup."""
        if self.interval is not None:
            return "–" if self.interval.n == 0 else self.interval.format(column.decimals, column.scale)
        if self.value is None or self.value.n == 0:
            return "–"
        if self.value.n >= 2:
            text = self.value.format(column.decimals, column.scale)
        else:
            text = f"{self.value.mean * column.scale:.{column.decimals}f}"
        if self.difference is not None:
            shown = round(self.difference * column.scale, column.decimals) + 0.0  # no "-0.00"
            text += f" ({shown:+.{column.decimals}f})"
        return text


@dataclass(frozen=True)
class Row:
    """Row labels (e.g. model, folds) and one cell per column."""

    labels: tuple[str, ...]
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class PairTest:
    """The best model of a column tested against one other model.

    Attributes:
        other: the other model's label.
        test: the permutation test of the difference of means (best - other).
        difference: the paired bootstrap interval of the mean difference over the common test
            volumes (best - other, raw units), or None for a metric without per-volume values.
    """

    other: str
    test: PermutationTestResult
    difference: Interval | None = None


@dataclass(frozen=True)
class Comparison:
    """Significance of the best model of one column.

    Attributes:
        column: the column's name.
        best: the best model's label.
        tests: one test against each other model that could be tested.
        untested: models it could not be tested against (too few folds or common volumes).
        significant: every other model tested, all with p < ALPHA.
    """

    column: str
    best: str
    tests: tuple[PairTest, ...]
    untested: tuple[str, ...]
    significant: bool


@dataclass(frozen=True)
class Table:
    """A rendered-ready table.

    Attributes:
        key: a short identifier (file name stem), e.g. ``table3-val-dice``.
        title: the caption, naming the threshold where it matters.
        row_headers: headers of the label columns.
        columns: the value columns.
        rows: the rows.
        notes: footnotes (definitions, what was skipped).
        comparisons: the significance tests behind the * marks.
    """

    key: str
    title: str
    row_headers: tuple[str, ...]
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    notes: tuple[str, ...]
    comparisons: tuple[Comparison, ...] = ()

    def _spans(self) -> list[tuple[str, int]]:
        """Consecutive columns sharing a group: (group, count)."""
        spans: list[tuple[str, int]] = []
        for column in self.columns:
            if spans and spans[-1][0] == column.group:
                spans[-1] = (column.group, spans[-1][1] + 1)
            else:
                spans.append((column.group, 1))
        return spans

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table: bold best, ``\\*`` for significance, notes below."""
        header = [*self.row_headers, *(column.name for column in self.columns)]
        lines = [f"### {self.title}", "", "| " + " | ".join(header) + " |",
                 "| " + " | ".join(["---"] * len(self.row_headers) + ["---:"] * len(self.columns)) + " |"]
        for row in self.rows:
            texts = []
            for cell, column in zip(row.cells, self.columns):
                text = cell.text(column)
                text = f"**{text}**" if cell.best else text
                texts.append(text + ("\\*" if cell.significant else ""))
            lines.append("| " + " | ".join([*row.labels, *texts]) + " |")
        lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """Numbers in display units: per column mean, std and number of folds (and the difference
        in Table 4), or mean, low, high and number of volumes in an interval table."""
        with_difference = [any(row.cells[i].difference is not None for row in self.rows)
                           for i in range(len(self.columns))]
        with_interval = [any(row.cells[i].interval is not None for row in self.rows) for i in range(len(self.columns))]
        header = list(self.row_headers)
        for column, difference, interval in zip(self.columns, with_difference, with_interval):
            header += [f"{column.name} {part}" for part in (("mean", "low", "high", "n") if interval
                                                             else ("mean", "std", "n"))]
            header += [f"{column.name} difference"] if difference else []
        stream = io.StringIO()
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(header)
        for row in self.rows:
            values: list[object] = list(row.labels)
            for cell, column, difference, interval in zip(row.cells, self.columns, with_difference, with_interval):
                values += _cell_numbers(cell, column.scale, interval)
                if difference:
                    values.append("" if cell.difference is None else _number(cell.difference * column.scale))
            writer.writerow(values)
        return stream.getvalue()

    def to_latex(self) -> str:
        """A booktabs ``table`` environment: grouped headers, bold best, ``$^{*}$``, notes below."""
        n_labels = len(self.row_headers)
        lines = [r"\begin{table}[ht]", r"\centering", rf"\caption{{{_latex(self.title)}}}",
                 r"\begin{tabular}{" + "l" * n_labels + "r" * len(self.columns) + "}", r"\toprule"]
        spans = self._spans()
        lines.append(" & ".join([""] * n_labels + [rf"\multicolumn{{{count}}}{{c}}{{{_latex(group)}}}"
                                                  for group, count in spans]) + r" \\")
        start = n_labels + 1
        rules = []
        for _, count in spans:
            rules.append(rf"\cmidrule(lr){{{start}-{start + count - 1}}}")
            start += count
        lines.append(" ".join(rules))
        lines.append(" & ".join([_latex(h) for h in self.row_headers] + [_latex(c.title) for c in self.columns])
                     + r" \\")
        lines.append(r"\midrule")
        for row in self.rows:
            texts = []
            for cell, column in zip(row.cells, self.columns):
                text = _latex(cell.text(column))
                text = rf"\textbf{{{text}}}" if cell.best else text
                texts.append(text + (r"$^{*}$" if cell.significant else ""))
            lines.append(" & ".join([_latex(label) for label in row.labels] + texts) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        lines += [rf"\par\footnotesize {_latex(note)}" for note in self.notes]
        lines.append(r"\end{table}")
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """An HTML ``<table>`` with a caption, grouped headers and the notes below it."""
        spans = self._spans()
        head = ["<tr>" + "".join(f'<th rowspan="2">{html.escape(h)}</th>' for h in self.row_headers)
                + "".join(f'<th colspan="{count}">{html.escape(group)}</th>' for group, count in spans) + "</tr>",
                "<tr>" + "".join(f"<th>{html.escape(column.title)}</th>" for column in self.columns) + "</tr>"]
        body = []
        for row in self.rows:
            cells = []
            for cell, column in zip(row.cells, self.columns):
                text = html.escape(cell.text(column))
                text = f"<strong>{text}</strong>" if cell.best else text
                cells.append(f"<td>{text}{'<sup>*</sup>' if cell.significant else ''}</td>")
            body.append("<tr>" + "".join(f'<td class="label">{html.escape(label)}</td>' for label in row.labels)
                        + "".join(cells) + "</tr>")
        notes = "".join(f'<li>{html.escape(note)}</li>' for note in self.notes)
        return (f'<table><caption>{html.escape(self.title)}</caption><thead>{"".join(head)}</thead>'
                f'<tbody>{"".join(body)}</tbody></table><ul class="notes">{notes}</ul>')


def _cell_numbers(cell: Cell, scale: float, interval: bool) -> list[object]:
    """A cell's CSV fields: mean, low, high, n (``interval``) or mean, std, n; blanks and 0 when missing."""
    if interval:
        found = cell.interval
        if found is None or found.n == 0:
            return ["", "", "", 0]
        return [_number(found.mean * scale), _number(found.low * scale), _number(found.high * scale), found.n]
    value = cell.value
    if value is None or value.n == 0:
        return ["", "", 0]
    return [_number(value.mean * scale), _number(value.std * scale), value.n]


def _number(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.12g}"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "–": "--", "—": "---"}


def _latex(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(char, char) for char in text)

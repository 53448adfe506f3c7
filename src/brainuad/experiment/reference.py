"""The paper's published figures (Behrendt et al., v1): Table 2 and Table 3, printed beside the
measured rows of an experiment's report so the gap to the paper is visible.

Values are as printed (display units: % for Dice, AUPRC and SSIM, dB for PSNR, e-3 for LPIPS and
the l1 error). Table 3 lists means over the five folds (its standard deviations are not kept
here); Table 2 lists mean ± std over folds. Table 2 evaluates the DDPM-based models with the
ensemble t_test = 250, 500, 750 (its caption), so its DDPM and pDDPM rows belong to
``DDPM + ENS`` and ``pDDPM + ENS``; its cDDPM row is given to ``cDDPM + SSL + ENS``, the paper's
final model (the caption does not say which SSL setting it used). Table 2 has no Thresh and no
f-AnoGAN row.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REFERENCE_ROWS", "REFERENCE_SOURCE", "ReferenceRow", "reference_metric"]

REFERENCE_SOURCE = ("Behrendt et al., Conditioned Diffusion Models for Unsupervised Anomaly Detection in Brain MRI "
                    "(preprint v1), Table 2 (mean ± std over 5 folds) and Table 3 (means over 5 folds); the "
                    "pDDPM-IQA row: Pan et al. 2024, as reported under this protocol (BraTS21 and MSLUB only)")

Value = tuple[float, float | None]
"""(mean, std or None) in display units."""


@dataclass(frozen=True)
class ReferenceRow:
    """One published row: ``values[(dataset, metric)]`` with metric one of ``dice``, ``auprc``,
    ``ssim``, ``psnr``, ``lpips``, ``l1``, ``l1_ratio``."""

    name: str
    values: dict[tuple[str, str], Value]


def _table3(brats: tuple[float, float | None], mslub: tuple[float, float | None], atlas: tuple[float, float | None],
            wmh: tuple[float, float | None]) -> dict[tuple[str, str], Value]:
    values: dict[tuple[str, str], Value] = {}
    for dataset, (dice, auprc) in (("brats21", brats), ("mslub", mslub), ("atlas", atlas), ("wmh", wmh)):
        values[(dataset, "dice")] = (dice, None)
        if auprc is not None:
            values[(dataset, "auprc")] = (auprc, None)
    return values


def _table2(ssim: Value, psnr: Value, lpips: Value, l1: Value, brats: Value, mslub: Value, atlas: Value,
            wmh: Value) -> dict[tuple[str, str], Value]:
    return {("ixi", "ssim"): ssim, ("ixi", "psnr"): psnr, ("ixi", "lpips"): lpips, ("ixi", "l1"): l1,
            ("brats21", "l1_ratio"): brats, ("mslub", "l1_ratio"): mslub, ("atlas", "l1_ratio"): atlas,
            ("wmh", "l1_ratio"): wmh}


_TABLE3 = {
    "Thresh": _table3((19.69, 20.27), (6.21, 4.23), (4.41, 1.71), (9.38, 4.72)),
    "f-AnoGAN": _table3((23.99, 21.08), (4.86, 3.77), (9.91, 9.17), (6.25, 3.45)),
    "VAE": _table3((28.81, 25.72), (6.16, 4.46), (15.08, 15.27), (5.23, 4.16)),
    "SVAE": _table3((31.93, 30.30), (6.04, 4.81), (10.49, 10.06), (6.64, 3.11)),
    "AE": _table3((31.51, 28.80), (7.23, 5.71), (14.91, 14.76), (4.53, 4.16)),
    "DAE": _table3((45.37, 49.38), (3.88, 4.47), (8.53, 12.45), (7.31, 6.32)),
    "DDPM": _table3((44.25, 49.98), (4.80, 6.36), (12.90, 15.67), (10.03, 8.86)),
    "DDPM + ENS": _table3((44.50, 50.73), (6.46, 6.31), (14.67, 17.56), (9.63, 8.12)),
    "pDDPM": _table3((49.36, 54.70), (9.40, 9.88), (12.95, 17.37), (8.03, 7.78)),
    "pDDPM + ENS": _table3((49.78, 55.10), (9.21, 10.11), (13.24, 17.76), (7.97, 7.65)),
    "cDDPM": _table3((51.34, 56.84), (10.71, None), (19.06, None), (9.94, None)),
    "cDDPM + SSL": _table3((52.35, 58.14), (11.09, None), (18.95, None), (9.92, None)),
    "cDDPM + SSL + ENS": _table3((53.37, 58.84), (11.51, 11.13), (19.99, 22.21), (9.88, 9.33)),
}
_FOLLOW_UP: dict[str, dict[tuple[str, str], Value]] = {
    "pDDPM-IQA": {("brats21", "dice"): (59.45, None), ("brats21", "auprc"): (62.99, None),
                  ("mslub", "dice"): (12.93, None), ("mslub", "auprc"): (11.51, None)},
}
"""Later results under this protocol (not rows of the paper's tables)."""
_TABLE2 = {
    "VAE": _table2((74.98, 0.54), (23.38, 0.14), (4.03, 0.50), (32.32, 0.64), (3.52, 0.08), (2.92, 0.06),
                   (4.43, 0.03), (2.36, 0.04)),
    "SVAE": _table2((77.87, 0.15), (23.94, 0.06), (3.31, 0.24), (29.08, 0.16), (3.90, 0.05), (3.13, 0.05),
                    (3.38, 0.11), (2.07, 0.01)),
    "AE": _table2((76.11, 0.27), (23.41, 0.14), (3.19, 0.54), (31.67, 0.41), (3.84, 0.17), (3.26, 0.18),
                  (4.40, 0.07), (2.36, 0.04)),
    "DAE": _table2((98.69, 0.15), (36.69, 0.38), (0.14, 0.01), (8.14, 0.17), (7.17, 0.63), (2.69, 0.15),
                   (4.51, 0.15), (2.99, 0.14)),
    "DDPM + ENS": _table2((93.96, 0.37), (31.79, 0.26), (0.49, 0.14), (14.29, 0.32), (6.16, 0.53), (3.37, 0.24),
                          (5.00, 0.23), (3.16, 0.15)),
    "pDDPM + ENS": _table2((96.62, 0.25), (34.58, 0.39), (0.09, 0.04), (9.70, 0.43), (7.16, 0.15), (4.34, 0.13),
                           (5.58, 0.28), (3.00, 0.16)),
    "cDDPM + SSL + ENS": _table2((96.80, 0.19), (34.87, 0.23), (0.11, 0.05), (9.68, 0.16), (7.43, 0.17),
                                 (4.49, 0.18), (5.69, 0.27), (3.12, 0.08)),
}

REFERENCE_ROWS: dict[str, ReferenceRow] = {
    name: ReferenceRow(name, {**values, **_TABLE2.get(name, {})}) for name, values in {**_TABLE3, **_FOLLOW_UP}.items()}
"""The published rows by name (Table 3's names)."""

_METRIC_TITLES = {"Dice [%] ↑": "dice", "AUPRC [%] ↑": "auprc", "SSIM [%] ↑": "ssim", "PSNR [dB] ↑": "psnr",
                  "LPIPS (e-3) ↓": "lpips", "l1-error (e-3) ↓": "l1", "l1-ratio ↑": "l1_ratio"}


def reference_metric(column_title: str) -> str | None:
    """The reference metric a table column's title shows (None: the paper printed none)."""
    return _METRIC_TITLES.get(column_title)

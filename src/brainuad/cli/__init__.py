"""The ``brainuad`` command and its sub-commands.

- :mod:`~brainuad.cli.console`: the consoles and ``user_errors``, shared by every command.
- :mod:`~brainuad.cli.synth`, :mod:`~brainuad.cli.validate`, :mod:`~brainuad.cli.demo`,
  :mod:`~brainuad.cli.train` (train and pretrain), :mod:`~brainuad.cli.predict`, :mod:`~brainuad.cli.calibrate`,
  :mod:`~brainuad.cli.evaluate`, :mod:`~brainuad.cli.prepare`, :mod:`~brainuad.cli.experiment`: one
  module per command, each a plain function registered here.

Heavy modules (torch, lightning, the evaluation protocol, preprocessing) are imported inside the
command functions, so ``brainuad --help`` stays fast.
"""

from __future__ import annotations

import typer

from brainuad.cli import calibrate, demo, evaluate, experiment, predict, prepare, synth, train, validate
from brainuad.cli.console import console, err_console, user_errors

__all__ = ["app", "console", "err_console", "main", "user_errors"]

app = typer.Typer(
    name="brainuad",
    help="Unsupervised anomaly detection in brain MRI with conditioned diffusion models (cDDPM), "
         "its baselines and its evaluation protocol.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# In the order of ``brainuad --help``.
app.command()(synth.synth)
app.command()(validate.validate)
app.command()(demo.demo)
app.command()(train.train)
app.command()(train.pretrain)
app.command()(predict.predict)
app.command()(calibrate.calibrate)
app.command()(evaluate.evaluate)
app.command()(prepare.prepare)
app.command()(experiment.experiment)


def main() -> None:
    """Console-script entry point."""
    app()

"""The preprocessing options ``brainuad prepare`` and ``brainuad predict --raw`` share (--atlas,
--atlas-mask, --skull-strip): their checks and the atlas they name.

Nothing here depends on the command line: a bad option raises :class:`OptionError`, which names the
option, and the commands report it as a usage error (exit code 2).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["OptionError", "check_pipeline_options", "load_atlas"]


class OptionError(ValueError):
    """A preprocessing option has a value that cannot be used.

    Args:
        option: the option at fault, as a user types it (``--skull-strip``).
        message: what is wrong with its value.
    """

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(message)


def check_pipeline_options(atlas: Path | None, atlas_mask: Path | None, skull_strip: str | None) -> None:
    """Check the preprocessing options ``prepare`` and ``predict --raw`` share (--atlas, --atlas-mask,
    --skull-strip).

    Raises:
        OptionError: an option's value cannot be used; it names the option.
    """
    from brainuad.preprocess.skullstrip import SKULL_STRIPPERS

    if skull_strip is not None and skull_strip not in SKULL_STRIPPERS:
        raise OptionError("--skull-strip", f"choose one of {', '.join(SKULL_STRIPPERS)}, got {skull_strip!r}")
    if atlas_mask is not None and atlas is None:
        raise OptionError("--atlas-mask", "--atlas-mask needs --atlas")


def load_atlas(atlas: Path | None, atlas_mask: Path | None):
    """The template given with --atlas (and --atlas-mask), read now so that a bad file is reported
    once, before any scan; None without --atlas.

    Raises:
        InputError: an atlas or mask file is missing or unusable.
    """
    from brainuad.preprocess.register import Atlas

    if atlas is None:
        return None
    template = Atlas.from_path(atlas, atlas_mask)
    template.load()
    return template

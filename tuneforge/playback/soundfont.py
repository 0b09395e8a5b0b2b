"""Find a General MIDI SoundFont: the option, then $TUNEFORGE_SOUNDFONT, then system paths."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tuneforge.errors import PlaybackError

SOUNDFONT_ENV = "TUNEFORGE_SOUNDFONT"

# Where distributions and Homebrew put GM SoundFonts, best-sounding first.
SYSTEM_SOUNDFONTS: tuple[Path, ...] = (
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/soundfonts/default.sf2"),
    Path("/usr/share/soundfonts/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Path("/usr/local/share/soundfonts/default.sf2"),
    Path("/opt/homebrew/share/soundfonts/default.sf2"),
)

INSTALL_HINT = (
    "install one with `sudo apt-get install fluid-soundfont-gm` (or `brew install fluid-synth`"
    f" and a .sf2 file), then pass --soundfont FILE.sf2 or set ${SOUNDFONT_ENV}"
)


def find_soundfont(
    option: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    candidates: Sequence[Path] = SYSTEM_SOUNDFONTS,
) -> Path:
    """Return the SoundFont to use.

    An explicit ``option`` or environment variable that names a missing file is an error
    rather than a silent fallback, so a typo is not covered up by another instrument set.

    Raises:
        PlaybackError: the named file is missing, or no SoundFont was found anywhere.
    """
    environ = os.environ if environ is None else environ
    if option is not None:
        path = Path(option).expanduser()
        if not path.is_file():
            raise PlaybackError(f"no SoundFont at {path}; check the --soundfont path")
        return path
    from_env = environ.get(SOUNDFONT_ENV)
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_file():
            raise PlaybackError(
                f"${SOUNDFONT_ENV} names {path}, which does not exist; fix or unset it"
            )
        return path
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise PlaybackError(f"no SoundFont found (looked in {looked}); {INSTALL_HINT}")

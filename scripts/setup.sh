#!/usr/bin/env bash
# Sets up tuneforge in .venv at the repository root. Safe to run again: a second run checks
# what is there and returns in about a second.
#
#   TUNEFORGE_TORCH   pip requirement for torch (default: torch==2.13.0; the CPU build is taken
#                     from a local wheel where one is on pip's find-links, PyPI's build otherwise)
#   TUNEFORGE_NO_APT  set to 1 to skip the system packages (FluidSynth, JACK)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# System packages: FluidSynth (library, binary and a General MIDI SoundFont) for rendering,
# JACK for live MIDI on machines without a sound card.
need_apt=()
command -v fluidsynth >/dev/null 2>&1 || need_apt+=(fluidsynth)
command -v jackd >/dev/null 2>&1 || need_apt+=(jackd2)
if [ "${TUNEFORGE_NO_APT:-0}" != "1" ] && [ ${#need_apt[@]} -gt 0 ]; then
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    say "installing system packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

python_bin="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $($python_bin --version)"
    "$python_bin" -m venv .venv
fi
py=.venv/bin/python

stamp=.venv/.tuneforge-setup
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16) ${TUNEFORGE_TORCH:-}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/tuneforge ]; then
    say "up to date ($(.venv/bin/tuneforge --version))"
    exit 0
fi

# torch first and pinned: an unpinned requirement would pull a CUDA build of several GB.
torch_req="${TUNEFORGE_TORCH:-torch==2.13.0}"
if ! "$py" -c "import torch" >/dev/null 2>&1; then
    say "installing $torch_req"
    "$py" -m pip install -q "$torch_req"
fi
say "installing tuneforge and its test tools"
"$py" -m pip install -q -e ".[dev]"
# numba compiles the cells' CPU kernels on first use; doing it here (about 15 s) spares a
# first training or generation that wait.
say "compiling the CPU kernels"
.venv/bin/tuneforge cells --compile >/dev/null
echo "$want" > "$stamp"
say "done ($(.venv/bin/tuneforge --version))"

"""The cell registry: names, aliases, options, and parameter counts in closed form."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tuneforge.cells import (
    CELLS,
    build_stack,
    cell_names,
    count_parameters,
    resolve_cell,
)
from tuneforge.errors import ConfigError

NAMES = [
    "rnn", "lstm", "gru", "diag-rnn", "diag-lstm", "diag-gru",
    "lstm-v1", "lstm-v2", "lstm-v3", "gru-v1", "gru-v2", "gru-v3",
    "clockwork", "rru", "mogrifier",
]  # fmt: skip


def expected_count(cell: str, m: int, n: int, **opt) -> int:
    """Free parameters of one layer, written out from the equations of docs/cells.md."""
    if cell == "clockwork":
        g = opt.get("num_modules", 8)
        k = n // g  # the tests use sizes divisible by the module count
        return n * m + n + k * k * g * (g + 1) // 2
    if cell == "rru":
        q, extra, p = opt.get("middle_multiplier", 2.0), opt.get("extra_layers", 0), 64
        p = opt.get("output_size", p)
        mid = round(q * (m + n))
        return mid * (m + n) + mid + extra * (mid * mid + mid) + n * mid + n + p * mid + p + 2 * n
    if cell == "mogrifier":
        rounds, rank = opt.get("rounds", 5), opt.get("rank", 32)
        return 4 * n * (m + n + 1) + rounds * rank * (m + n)
    return {
        "rnn": n * m + n * n + n,
        "lstm": 4 * n * m + 4 * n * n + 4 * n,
        "gru": 3 * n * m + 3 * n * n + 3 * n + n,  # + b_hn, which the reset gate multiplies
        "diag-rnn": n * m + n + n,
        "diag-lstm": 4 * n * m + 4 * n + 4 * n,
        "diag-gru": 3 * n * m + 3 * n + 3 * n,
        "lstm-v1": n * m + 4 * n * n + 4 * n,
        "lstm-v2": n * m + 4 * n * n + n,
        "lstm-v3": n * m + n * n + 4 * n,
        "gru-v1": n * m + 3 * n * n + 3 * n + n,
        "gru-v2": n * m + 3 * n * n + n + n,
        "gru-v3": n * m + n * n + 3 * n + n,
    }[cell]


def test_names_in_registry_order():
    assert cell_names() == NAMES
    assert list(CELLS) == NAMES
    for name in NAMES:
        info = CELLS[name]
        assert info.description and info.paper
        assert info.fused == (name not in {"clockwork", "rru", "mogrifier"})


def test_alias_and_case_resolve():
    assert resolve_cell("lstm-variant") == "lstm-v1"
    assert resolve_cell(" LSTM ") == "lstm"
    stack = build_stack("lstm-variant", input_size=3, hidden_size=4)
    assert count_parameters("lstm-v1", input_size=3, hidden_size=4) == sum(
        p.numel() for p in stack.parameters()
    )


def test_unknown_cell_lists_valid_names():
    with pytest.raises(ConfigError) as caught:
        resolve_cell("lstn")
    message = str(caught.value)
    assert "lstn" in message and "\n" not in message
    for name in NAMES + ["lstm-variant"]:
        assert name in message
    with pytest.raises(ConfigError):
        build_stack("transformer", input_size=3, hidden_size=4)


def test_unknown_option_lists_valid_options():
    with pytest.raises(ConfigError, match="rounds, rank, forget_bias"):
        build_stack("mogrifier", input_size=3, hidden_size=4, round=2)
    with pytest.raises(ConfigError, match="valid options: none"):
        build_stack("gru", input_size=3, hidden_size=4, forget_bias=1.0)


def test_option_values_are_converted_by_the_default_type():
    stack = build_stack("mogrifier", input_size=3, hidden_size=4, rounds="2", rank="3")
    assert len(stack.layers[0].mog_up) == 2
    stack = build_stack("rru", input_size=3, hidden_size=4, middle_multiplier=1)
    assert stack.layers[0].middle_size == 7
    with pytest.raises(ConfigError, match="rounds"):
        build_stack("mogrifier", input_size=3, hidden_size=4, rounds="many")
    with pytest.raises(ConfigError, match="whole number"):
        build_stack("mogrifier", input_size=3, hidden_size=4, rounds=2.5)
    with pytest.raises(ConfigError, match="hidden_size"):
        build_stack("lstm", input_size=3, hidden_size=0)
    with pytest.raises(ConfigError, match="num_modules"):
        build_stack("clockwork", input_size=3, hidden_size=4, num_modules=5)


@pytest.mark.parametrize("cell", NAMES)
@pytest.mark.parametrize(("m", "n"), [(88, 256), (5, 8)])
def test_parameter_count_closed_form(cell: str, m: int, n: int):
    expected = expected_count(cell, m, n)
    assert count_parameters(cell, input_size=m, hidden_size=n) == expected
    built = build_stack(cell, input_size=m, hidden_size=n)
    assert sum(p.numel() for p in built.parameters()) == expected
    # Only free parameters are saved: the state dict holds exactly the parameters.
    assert sum(t.numel() for t in built.state_dict().values()) == expected


@pytest.mark.parametrize(
    ("cell", "options"),
    [
        ("clockwork", {"num_modules": 4}),
        ("rru", {"middle_multiplier": 1.5, "extra_layers": 2, "output_size": 10}),
        ("mogrifier", {"rounds": 3, "rank": 7}),
    ],
)
def test_parameter_count_with_options_and_layers(cell: str, options: dict):
    m, n = 12, 16
    first = expected_count(cell, m, n, **options)
    output = options.get("output_size", n) if cell == "rru" else n
    second = expected_count(cell, output, n, **options)
    total = count_parameters(cell, input_size=m, hidden_size=n, num_layers=2, **options)
    assert total == first + second


def test_registry_import_does_not_load_torch():
    code = (
        "import sys, tuneforge.cells as c; c.resolve_cell('lstm-variant'); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

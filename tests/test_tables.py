"""Result-table cells."""

import pytest

from v2xsim.tables import table_cell


def test_cells_format_floats_keep_others_and_blank_missing_statistics():
    assert table_cell(1 / 3, digits=6) == "0.333333"
    assert table_cell(2.0, digits=10) == "2"
    assert table_cell(7, digits=6) == 7 and table_cell("gba", digits=6) == "gba"
    assert table_cell(None, digits=6) == ""


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_never_reach_a_table(value):
    with pytest.raises(ValueError, match="non-finite"):
        table_cell(value, digits=6)

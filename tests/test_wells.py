"""The well-name parser and formatter: round trips over the standard formats, plate order."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from napari_pcim.plate_io.wells import (
    PLATE_FORMATS,
    guess_format,
    plate_grid,
    row_index,
    row_letters,
    split_well,
    well_name,
    well_sort_key,
)


@pytest.mark.parametrize("plate_format", sorted(PLATE_FORMATS))
def test_every_well_of_every_format_round_trips(plate_format):
    rows, columns = plate_grid(plate_format)
    assert (len(rows), len(columns)) == PLATE_FORMATS[plate_format]
    names = [well_name(r, c) for r in range(len(rows)) for c in columns]
    assert len(set(names)) == len(names) == plate_format
    for i, letters in enumerate(rows):
        assert row_index(letters) == i and row_letters(i) == letters
        for c in columns:
            name = well_name(i, c)
            assert split_well(name) == (letters, c)
            assert well_name(*split_well(name)) == name == well_name(letters, str(c))
    # Plate order is row by row, also past row Z (1536: ..., Z48, AA01, ...).
    shuffled = random.Random(0).sample(names, len(names))
    assert sorted(shuffled, key=well_sort_key) == names
    assert guess_format(names) == plate_format


def test_1536_rows_continue_after_z():
    assert well_name(25, 48) == "Z48" and well_name(26, 1) == "AA01" and well_name(31, 48) == "AF48"
    assert guess_format(["AF48"]) == 1536 and guess_format(["H12", "A01"]) == 96
    assert guess_format(["P24"]) == 384 and guess_format([]) is None
    assert guess_format(["AZ99"]) is None


@given(
    letters=st.sampled_from([row_letters(i) for i in range(32)]),
    column=st.integers(1, 48),
    lower=st.booleans(),
    pad=st.integers(0, 2),
    space=st.sampled_from(["", " ", "\t"]),
)
def test_parser_accepts_case_padding_and_whitespace(letters, column, lower, pad, space):
    text = f"{space}{letters.lower() if lower else letters}{column:0{pad + 1}d}{space}"
    assert split_well(text) == (letters, column)
    assert well_name(*split_well(text)) == f"{letters}{column:02d}"


@given(st.text(max_size=8))
def test_parser_rejects_anything_else_with_a_clear_message(text):
    import re

    if re.fullmatch(r"[A-Za-z]{1,2}\d{1,3}", text.strip()):
        return
    with pytest.raises(ValueError, match="not a well name"):
        split_well(text)

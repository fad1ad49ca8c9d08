"""Ramps, quantisation and text helpers."""

from __future__ import annotations

import numpy as np
from rich.cells import cell_len

from tui.components.theme import (
    DIVERGING,
    SEQUENTIAL,
    HalfBlockStyles,
    contrast_text,
    fit_cells,
    format_value,
    visible_piece,
)


def test_sequential_quantise_maps_ends_and_masks_non_finite() -> None:
    levels = SEQUENTIAL.quantise(np.array([0.0, 1.0, 0.5, np.nan, -np.inf, 2.0]), 0.0, 1.0)
    assert levels[0] == 0
    assert levels[1] == SEQUENTIAL.levels - 1
    assert 0 < levels[2] < SEQUENTIAL.levels - 1
    assert levels[3] == SEQUENTIAL.masked and levels[4] == SEQUENTIAL.masked
    assert levels[5] == SEQUENTIAL.levels - 1  # clipped


def test_diverging_limits_are_symmetric_around_zero() -> None:
    lo, hi = DIVERGING.limits(np.array([-0.5, 2.0, np.nan]), None, None)
    assert (lo, hi) == (-2.0, 2.0)
    zero = DIVERGING.quantise(np.array([0.0]), lo, hi)[0]
    assert abs(int(zero) - (DIVERGING.levels - 1) / 2) <= 0.5


def test_half_block_styles_are_cached_per_pair() -> None:
    styles = HalfBlockStyles(SEQUENTIAL)
    a = styles.get(3, 7)
    assert styles.get(3, 7) is a
    assert a.color is not None and a.bgcolor is not None
    assert a.color.get_truecolor() == SEQUENTIAL.colors[3].get_truecolor()
    assert styles.get(3, SEQUENTIAL.empty).bgcolor is None


def test_visible_piece_shows_whitespace_and_controls() -> None:
    assert visible_piece(" self") == "·self"
    assert visible_piece("\n\n") == "↵↵"
    assert visible_piece("\t") == "→"
    assert visible_piece("\x00") == "␀"
    assert visible_piece("") == "∅"


def test_fit_cells_counts_wide_characters() -> None:
    cut = fit_cells("日本語", 4)  # a wide character cannot be split: padded, then '…'
    assert cut == "日 …" and cell_len(cut) == 4
    assert fit_cells("ab", 4) == "ab  "
    assert fit_cells("ab", 4, align="right") == "  ab"


def test_contrast_text_and_format_value() -> None:
    assert contrast_text(SEQUENTIAL.colors[0]).get_truecolor() == (255, 255, 255)
    assert contrast_text(SEQUENTIAL.colors[-1]).get_truecolor() == (0, 0, 0)
    assert format_value(float("nan")) == "masked"
    assert format_value(0.4123) == "0.4123"

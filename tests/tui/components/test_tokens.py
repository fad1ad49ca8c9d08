"""Token strip: visible whitespace, ids, alternating colours, special tokens, cursor, picking."""

from __future__ import annotations

import pytest

from tui.components.tokens import TokenStrip

pytestmark = pytest.mark.anyio

PIECES = ["<|im_start|>", "user", "\n", "def", " self", "(", "\t", "日本", "<|im_end|>"]
IDS = [151644, 872, 198, 750, 656, 7, 197, 101059, 151645]
SPECIAL = [True, False, False, False, False, False, False, False, True]


async def test_pieces_ids_whitespace_and_colours(host, cells, lines) -> None:  # noqa: ANN001
    tokens = TokenStrip(PIECES, IDS, special=SPECIAL)
    app = host(tokens)
    async with app.run_host() as pilot:
        await pilot.pause()
        text = lines(tokens)
        assert text[0].split() == ["<|im_start|>", "user", "↵", "def", "·self", "(", "→", "日本", "<|im_end|>"]
        assert text[1].split() == [str(i) for i in IDS]
        row = cells(tokens.render_line(0))
        # alternating backgrounds: token 1 ("user") and token 3 ("def") share one, token 2 ("↵") differs
        user = next(style for ch, style in row if ch == "u")
        newline = next(style for ch, style in row if ch == "↵")
        d = next(style for ch, style in row if ch == "d")
        assert user.bgcolor == d.bgcolor != newline.bgcolor
        special = next(style for ch, style in reversed(row) if ch == "<")  # token 0 has the cursor
        assert special.italic
        assert tokens.size.height == 2  # height: auto


async def test_cursor_keys_and_pick(host) -> None:  # noqa: ANN001
    tokens = TokenStrip(PIECES, IDS, special=SPECIAL)
    app = host(tokens)
    async with app.keys(tokens, "right", "right", "l", "enter", "end", "h"):
        moved = app.of_type(TokenStrip.TokenHighlighted)
        assert [m.index for m in moved] == [1, 2, 3, 8, 7]
        picked = app.of_type(TokenStrip.TokenPicked)
        assert [(p.index, p.token_id, p.piece) for p in picked] == [(3, 750, "def")]


async def test_wraps_and_moves_between_rows_in_a_small_host(host) -> None:  # noqa: ANN001
    pieces = PIECES * 12
    tokens = TokenStrip(pieces, IDS * 12, special=SPECIAL * 12)
    app = host(tokens)
    async with app.run_host(size=(80, 24)) as pilot:
        tokens.focus()
        await pilot.pause()
        assert tokens.virtual_size.height > 2
        first_row = [c.index for c in tokens._chips if c.row == 0]
        await pilot.press("down")
        await pilot.pause()
        assert tokens._chips[tokens.cursor].row == 1
        assert tokens.cursor > first_row[-1]
        await pilot.press("i")  # hide ids: one line per row
        await pilot.pause()
        assert tokens._lines_per_row == 1
        await pilot.press("end")
        await pilot.pause()
        assert tokens.cursor == len(pieces) - 1
        for y in range(tokens.size.height):
            assert tokens.render_line(y).cell_length == tokens.size.width


async def test_click_picks_a_token(host) -> None:  # noqa: ANN001
    tokens = TokenStrip(PIECES, IDS)
    app = host(tokens)
    async with app.run_host() as pilot:
        await pilot.pause()
        chip = tokens._chips[4]
        await pilot.click(tokens, offset=(chip.x + 1, 1))
        await pilot.pause()
        picked = app.of_type(TokenStrip.TokenPicked)
        assert [(p.index, p.piece) for p in picked] == [(4, " self")]
        with pytest.raises(ValueError):
            tokens.set_tokens(["a", "b"], [1])

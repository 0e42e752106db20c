"""The book's figure style and its one-line error display."""

import pytest

from tdyn.plotting import TEXT_WIDTH, shows_error


def test_shows_error_prints_one_wrapped_line_per_error(capsys):
    with shows_error(ValueError):
        raise ValueError("p=1.2 must lie in the open interval (0, 1) " * 4)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ValueError: p=1.2 must lie")
    assert len(lines) > 1 and max(map(len, lines)) <= TEXT_WIDTH
    assert "Traceback" not in "".join(lines)


def test_shows_error_fails_when_nothing_is_raised():
    with pytest.raises(AssertionError, match="expected ValueError"), shows_error(ValueError):
        pass


def test_shows_error_lets_other_errors_through():
    with pytest.raises(KeyError), shows_error(ValueError):
        raise KeyError("not the demonstrated error")

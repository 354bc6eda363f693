"""Go's strconv.Quote, once for every message that quotes a value (status and validation)."""

from __future__ import annotations

import pytest

from buildwright.core import podview
from buildwright.core.formats import go_quote
from buildwright.core.validation import env

# Expected values as Go 1.22's strconv.Quote prints them.
CASES = [
    ("", '""'),
    ('say "hi"\n\tnow\\', '"say \\"hi\\"\\n\\tnow\\\\"'),
    ("\a\b\f\r\v", '"\\a\\b\\f\\r\\v"'),
    ("\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'),
    ("\u0085", '"\\u0085"'),  # NEL: a C1 control, \u in Go, not \x
    ("\u00a0", '"\\u00a0"'),  # no-break space: a separator, not printable in Go
    ("\u2028", '"\\u2028"'),
    ("\ufeff", '"\\ufeff"'),
    ("naïve ✓ 日本", '"naïve ✓ 日本"'),
    ("\U0001f600", '"\U0001f600"'),  # printable above U+FFFF: as it is
    ("\U000e0001", '"\\U000e0001"'),  # a format character above U+FFFF: \U and 8 digits
    ("\U0010ffff", '"\\U0010ffff"'),  # unassigned
    ("\ufffd", '"\ufffd"'),
    # A lone surrogate is what Go's JSON decoder turns into U+FFFD.
    ("a\ud800b", '"a\ufffdb"'),
    ("\udcff", '"\ufffd"'),
]


@pytest.mark.parametrize(("text", "quoted"), CASES)
def test_go_quote_matches_strconv_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


def test_status_and_validation_quote_with_the_same_function() -> None:
    assert podview.go_quote is go_quote
    assert env.go_quote is go_quote

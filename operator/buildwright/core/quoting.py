"""Go's `strconv.Quote` (what `%q` prints), because upstream's messages quote values that way
and users and scripts match on those messages.

Go works on UTF-8 bytes, Python on code points; the one place they differ is a string Go
could not decode. A Python string can hold a lone surrogate (U+D800–U+DFFF), which no UTF-8
text encodes. Such a string only comes out of JSON (`"\\ud800"`); Go's JSON decoder, which
the API server's is, turns each into U+FFFD, so here too it becomes U+FFFD (printed as is,
as Go prints that character).
"""

from __future__ import annotations

_SHORT_ESCAPES = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
    "\\": "\\\\", '"': '\\"',
}  # fmt: skip
_REPLACEMENT = "\ufffd"


def _is_print(char: str) -> bool:
    """Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII
    space. Python's str.isprintable excludes the same categories (other, separators)."""
    return char.isprintable()


def go_quote(text: str) -> str:
    """`text` as Go's strconv.Quote returns it: in double quotes, `"` and `\\` escaped, the
    short escapes (`\\a \\b \\f \\n \\r \\t \\v`), other unprintable characters as `\\xNN`
    (below U+0020 and U+007F), `\\uNNNN` (below U+10000) or `\\UNNNNNNNN`; printable
    characters (non-ASCII too) as they are."""
    out = ['"']
    for char in text:
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            char, code = _REPLACEMENT, ord(_REPLACEMENT)
        escape = _SHORT_ESCAPES.get(char)
        if escape is not None:
            out.append(escape)
        elif _is_print(char):
            out.append(char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)

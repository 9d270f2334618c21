"""Heuristic role labels for code tokens: the supervision of phase 1.3 (`docs/phases.md`, 1.1).

    from voltx_phases.translator.role_labels import RoleLabeller
    labeller = RoleLabeller.from_tokenizer(tokenizer, clean=True)
    labels = labeller.labels(tokenizer.encode(code, add_special_tokens=False).ids)

A state machine walks the tokens and gives each one of the 16 slot roles: `def`/`class` and the
name after them 0, assignment operators 1, call and definition arguments 2, the returned
expression 3, loops 4, imports 5, conditions 6, exception handling 7, anything else 15.

The original ran it on raw ByteLevel token strings (`Ġdef`, `Ġreturn`, `ĊĠĠĠ`) and compared
them, after `trim()`, with plain keywords, so keywords essentially never matched, a newline
never ended a return expression, and a multi-character token such as `):` never closed an
argument list: the labels were mostly 15 with long runs of 2 (spec Appendix A.2). With
``clean=True`` (the default) each token is first decoded from its ByteLevel glyphs to text
(`Ġdef` -> ` def`, `ĊĠĠĠ` -> a newline and spaces), a token holding a newline ends a return
expression, and the parentheses of a punctuation token (`):`, `()`, `((`) are counted.
``clean=False`` reproduces the original's labels exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import attrs
from tokenizers import Tokenizer

AGENT_DEFINITION = 0  # `def` / `class` and the name that follows
PREDICATE_ASSIGNMENT = 1  # `=`, `+=`, ...
PATIENT_ARGUMENTS = 2  # inside the parentheses of a call or a definition
LOCATION_RETURN = 3  # `return` and the expression it returns
TIME_LOOP = 4  # `for`, `while`
MANNER_IMPORT = 5  # `import`, `from`
INSTRUMENT_CONDITION = 6  # `if`, `elif`, `else`
CAUSE_EXCEPTION = 7  # `try`, `except`, `finally`, `catch`
OTHER = 15  # everything else, and padding

ASSIGNMENT_OPERATORS = frozenset(
    ("=", "+=", "-=", "*=", "/=", "//=", "%=", "**=", "&=", "|=", "^=", ">>=", "<<=")
)
_KEYWORDS = {
    "return": LOCATION_RETURN,
    "for": TIME_LOOP,
    "while": TIME_LOOP,
    "if": INSTRUMENT_CONDITION,
    "elif": INSTRUMENT_CONDITION,
    "else": INSTRUMENT_CONDITION,
    "try": CAUSE_EXCEPTION,
    "except": CAUSE_EXCEPTION,
    "finally": CAUSE_EXCEPTION,
    "catch": CAUSE_EXCEPTION,
    "import": MANNER_IMPORT,
    "from": MANNER_IMPORT,
}


@attrs.frozen
class TokenView:
    """What the state machine reads of one token."""

    word: str  # the token's text, stripped and lowercased
    newline: bool  # the token ends a line
    opens: int  # "(" it opens
    closes: int  # ")" it closes
    colon: bool  # it ends a `def`/`class` header


@cache
def _byte_decoder() -> dict[str, int]:
    # GPT-2's bytes_to_unicode, inverted: printable bytes stand for themselves, the others were
    # shifted to 256+n (a space becomes `Ġ`, a newline `Ċ`).
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    glyphs = list(printable)
    shifted = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            glyphs.append(256 + shifted)
            shifted += 1
    return {chr(glyph): byte for byte, glyph in zip(printable, glyphs, strict=True)}


def decode_token(token: str) -> str:
    """The text a ByteLevel token string stands for (`Ġreturn` -> ` return`)."""
    table = _byte_decoder()
    if not all(ch in table for ch in token):
        return token  # a special token such as <pad>, or not a ByteLevel string
    return bytes(table[ch] for ch in token).decode("utf-8", errors="replace")


def token_view(token: str, clean: bool) -> TokenView:
    """How the state machine sees `token` (a ByteLevel token string)."""
    if not clean:
        # The original: Rust's trim() leaves `Ġ` and `Ċ` alone, and "\n" trims to "", so the
        # newline test can never succeed and only a bare "(" or ")" counts.
        word = token.strip().lower()
        return TokenView(word, word == "\n", int(word == "("), int(word == ")"), word == ":")
    text = decode_token(token)
    word = text.strip().lower()
    punctuation = not any(ch.isalnum() or ch == "_" for ch in word)
    opens = word.count("(") if punctuation else 0
    closes = word.count(")") if punctuation else 0
    return TokenView(word, "\n" in text, opens, closes, punctuation and ":" in word)


def label_views(views: Sequence[TokenView]) -> list[int]:
    """The role of each token, by the original's state machine (`docs/phases.md`, 1.1)."""
    labels: list[int] = []
    state = "normal"  # normal, name (after def/class), args (inside parentheses), return
    depth = 0
    for view in views:
        word = view.word
        if state == "name":
            if view.opens:
                label, state, depth = PATIENT_ARGUMENTS, "args", view.opens - view.closes
                if depth <= 0:
                    state = "normal"
            else:
                label = AGENT_DEFINITION
                if view.colon:
                    state = "normal"
        elif state == "args":
            label = PATIENT_ARGUMENTS
            depth += view.opens - view.closes
            if depth <= 0:
                state = "normal"
        elif state == "return":
            if view.newline or word == ";" or word.startswith("#"):
                label, state = OTHER, "normal"
            else:
                label = LOCATION_RETURN
        elif word in ("def", "class"):
            label, state = AGENT_DEFINITION, "name"
        elif word == "return":
            label, state = LOCATION_RETURN, "return"
        elif word in _KEYWORDS:
            label = _KEYWORDS[word]
        elif view.opens:
            label, depth = PATIENT_ARGUMENTS, view.opens - view.closes
            if depth > 0:
                state = "args"
        elif word in ASSIGNMENT_OPERATORS:
            label = PREDICATE_ASSIGNMENT
        else:
            label = OTHER
        labels.append(label)
    return labels


def role_labels(tokens: Sequence[str], clean: bool = True) -> list[int]:
    """The role of each ByteLevel token string."""
    return label_views([token_view(token, clean) for token in tokens])


class RoleLabeller:
    """Labels id sequences, with each vocabulary entry's view computed once."""

    def __init__(self, vocabulary: Sequence[str], clean: bool = True) -> None:
        self.views = [token_view(token, clean) for token in vocabulary]

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer, clean: bool = True) -> RoleLabeller:
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        return cls([tokenizer.id_to_token(i) or "" for i in range(size)], clean)

    def labels(self, ids: Sequence[int]) -> list[int]:
        return label_views([self.views[i] for i in ids])

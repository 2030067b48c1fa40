"""The `$filter` expression on image metadata: `key eq 'v' and k2 ne 'w' or ...`.

Grammar (`and` binds tighter than `or`, as in OData):
  expr := conj ("or" conj)* ; conj := cmp ("and" cmp)* ; cmp := key ("eq"|"ne") 'value'
Keys may be written bare or as `metadata/key`; quotes inside values are doubled ('it''s').
"""

from __future__ import annotations

import re
from collections.abc import Callable

from functions.domain.errors import BadRequest

Predicate = Callable[[dict[str, str]], bool]

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<word>[^\s']+))")


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise _invalid(text)
        tokens.append(match.group(0).strip())
        pos = match.end()
    return tokens


def _invalid(text: str) -> BadRequest:
    return BadRequest(
        "BadRequestInvalid",
        f"Cannot parse $filter '{text}'. Use key eq 'value' or key ne 'value', joined with "
        "and / or.",
    )


def parse_metadata_filter(text: str | None) -> Predicate | None:
    if text is None or not text.strip():
        return None
    tokens = _tokens(text)
    disjuncts: list[list[tuple[str, str, str]]] = [[]]
    i = 0
    while True:
        if i + 3 > len(tokens):
            raise _invalid(text)
        key, op, value = tokens[i], tokens[i + 1].lower(), tokens[i + 2]
        if op not in ("eq", "ne") or not (value.startswith("'") and value.endswith("'")):
            raise _invalid(text)
        disjuncts[-1].append((key.removeprefix("metadata/"), op, value[1:-1].replace("''", "'")))
        i += 3
        if i == len(tokens):
            break
        joiner = tokens[i].lower()
        if joiner == "or":
            disjuncts.append([])
        elif joiner != "and":
            raise _invalid(text)
        i += 1

    def predicate(metadata: dict[str, str]) -> bool:
        return any(
            all((metadata.get(k) == v) == (op == "eq") for k, op, v in conj) for conj in disjuncts
        )

    return predicate

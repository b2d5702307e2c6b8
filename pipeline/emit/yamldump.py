"""The one YAML dump for generated files: typed models -> plain data -> text.

Deterministic: the same data gives the same bytes (insertion order kept, no wrapping, no clock).
A pinned action is a `Pin` in the data and a commented value an `Annotated`; the dump writes
`owner/repo@<sha>  # vX.Y.Z`, the comment attached to the YAML node (ruamel.yaml), never added to
the text afterwards.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

from pipeline.emit.pins import Pin


@dataclass(frozen=True)
class Annotated:
    """A scalar with a comment written after it on the same line."""

    value: str
    comment: str


def _convert(value: Any) -> Any:
    if isinstance(value, Mapping):
        node = CommentedMap()
        for key, item in value.items():
            note = Annotated(item.uses, item.version) if isinstance(item, Pin) else item
            if isinstance(note, Annotated):
                node[key] = note.value
                node.yaml_add_eol_comment(note.comment, key)
            else:
                node[key] = _convert(item)
        return node
    if isinstance(value, Sequence) and not isinstance(value, str):
        return CommentedSeq(_convert(item) for item in value)
    if isinstance(value, str) and "\n" in value.rstrip("\n"):
        return LiteralScalarString(value)  # a file's text, as `|` block: readable in review
    return value


def dump(data: Mapping[str, Any], header: str) -> str:
    yaml = YAML()
    yaml.width = 4096  # never fold a long command line
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = _convert(data)
    document.yaml_set_start_comment(header)
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()

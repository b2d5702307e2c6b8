"""Spec validation (being written: see issue 3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.specload import LoadedSpec


def validate(loaded: LoadedSpec) -> None:
    return None

"""The one exception the expression package raises."""

from __future__ import annotations


class ExprError(Exception):
    """An expression problem; `column` is a 0-based character offset into the expression text."""

    def __init__(self, code: str, message: str, column: int | None = None):
        self.code, self.message, self.column = code, message, column
        super().__init__(f"{code}: {message}")

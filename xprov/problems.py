"""The one error shape of everything an operator edits: a list of problems, each already
'where: what is wrong', so `check-config`, reload and startup print them all at once."""

from __future__ import annotations


class Problems(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems

"""Jinja2 over vendor_templates/: sandboxed, strict, XML-escaped for XML, byte-stable.

Templates are compiled when a `Templates` is built, so a syntax error is found by
`check-config` or a reload, never by a phone. Rendering produces the whole file or raises
RenderError: there is no partial output to send.
"""

from __future__ import annotations

import re
import traceback
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from xprov.problems import Problems

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class RenderError(Exception):
    """A template failed; names the template, its line and what was wrong (never a value)."""

    def __init__(self, template: str, line: int | None, reason: str) -> None:
        where = f"{template}:{line}" if line else template
        super().__init__(f"{where}: {reason}")
        self.template, self.line, self.reason = template, line, reason


class TemplateProblems(Problems):
    """Templates that do not compile; `problems` names each file and line."""


def _checked(value: Any) -> Any:
    """Every value a template prints: never None, never a control character (a newline
    in a password would inject a key into a Yealink file). Markup is the template's own
    output (a macro's lines), not data."""
    if value is None:
        raise ValueError("a value is None (missing data?)")
    if isinstance(value, str) and not isinstance(value, Markup) and _CONTROL.search(value):
        raise ValueError("a value contains a control character")
    return value


class CompiledTemplates(jinja2.BytecodeCache):
    """Compiled code of each template file, kept across reloads: a reload recompiles only
    the files whose source changed (Jinja checks each file's checksum). One entry per
    template file ever loaded, replaced when its source changes."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()

    def __len__(self) -> int:
        return len(self._code)


COMPILED = CompiledTemplates()


def _is_xml(name: str | None) -> bool:
    return name is not None and name.endswith(".xml")


class Templates:
    """One compiled set of templates, searched in `dirs` order (the first match wins,
    so an override directory listed first replaces a shipped template)."""

    def __init__(self, dirs: Sequence[Path], required: Iterable[str], generation: int) -> None:
        self.dirs = tuple(Path(d).resolve() for d in dirs)
        self.generation = generation
        self.env = ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader([str(d) for d in self.dirs]),
            undefined=jinja2.StrictUndefined,
            autoescape=_is_xml,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=_checked,
            auto_reload=False,
            cache_size=-1,
            bytecode_cache=COMPILED,
        )
        problems = []
        for name in sorted(set(required)):
            try:
                self.env.get_template(name)
            except jinja2.TemplateNotFound:
                problems.append(f"template {name}: not found in {', '.join(map(str, self.dirs))}")
            except jinja2.TemplateSyntaxError as exc:
                problems.append(f"template {name}:{exc.lineno}: {exc.message}")
        if problems:
            raise TemplateProblems(problems)

    def render(self, name: str, context: Mapping[str, Any]) -> bytes:
        try:
            return self.env.get_template(name).render(context).encode("utf-8")
        except Exception as exc:  # a template may fail in any way; none must escape
            raise RenderError(name, self._template_line(exc), _reason(exc)) from None

    def _template_line(self, exc: BaseException) -> int | None:
        """The line in a template file where rendering failed (Jinja maps its frames)."""
        line = None
        for frame in traceback.extract_tb(exc.__traceback__):
            if any(frame.filename.startswith(str(d)) for d in self.dirs):
                line = frame.lineno
        return line


def _reason(exc: Exception) -> str:
    if isinstance(exc, jinja2.UndefinedError):
        return f"undefined: {exc.message}"
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"template not found: {exc.name}"
    if isinstance(exc, ValueError | TypeError | jinja2.TemplateError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


class RenderCache:
    """Rendered files by identity, each stored with the input generations it was made from.

    An entry made from other generations is a miss and is replaced, so a switch or a
    reload needs no sweep and a stale file can never be served. Bounded (LRU)."""

    def __init__(self, max_entries: int = 250_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[Hashable, bytes]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: Hashable, generation: Hashable) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != generation:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: Hashable, generation: Hashable, body: bytes) -> None:
        self._entries[key] = (generation, body)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

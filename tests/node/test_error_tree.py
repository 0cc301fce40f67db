"""The project's exceptions form one tree under MedgossipError, drawn in node/errors.py.

The drawing is what a newcomer reads, so it must be the truth: every class of the four
errors modules is drawn under its real parent, names are unique across the project, no
other module defines a subclass the drawing does not show, and `gossip` raises only its
own errors (never a bare ValueError or RuntimeError).
"""

from __future__ import annotations

import builtins
import importlib
import re
from pathlib import Path

import node.errors
from gossip.errors import MedgossipError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gossip", "node", "contracts", "devnet")
_BRANCH = re.compile(r"^(?P<indent>[ │]*)[├└]── (?P<name>\w+)")
_CLASS = re.compile(r"^class (\w+)\(([^)]*)\)", re.MULTILINE)


def _drawn_parents() -> dict[str, str | None]:
    """class name -> parent name, read from the tree in node.errors' docstring."""
    doc = node.errors.__doc__ or ""
    lines = doc.split("::", 1)[1].splitlines()
    root_line = next(line for line in lines if line.strip())
    root = root_line.split()[0]
    root_column = root_line.index(root)
    parents: dict[str, str | None] = {root: None}
    stack: list[str] = [root]  # stack[d] = the last class drawn at depth d
    for line in lines:
        match = _BRANCH.match(line)
        if match is None:
            continue
        depth = (len(match["indent"]) - root_column) // 4 + 1
        name = match["name"]
        assert name not in parents, f"{name} is drawn twice"
        del stack[depth:]
        parents[name] = stack[depth - 1]
        stack.append(name)
    return parents


def _project_errors() -> dict[str, type[BaseException]]:
    """Every MedgossipError subclass defined anywhere in the four packages, by name.

    Found by reading the sources (so a class in, say, node/merkle.py counts), then
    imported to check the real inheritance.
    """
    defined: dict[str, list[tuple[str, list[str]]]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            for name, bases in _CLASS.findall(path.read_text(encoding="utf-8")):
                parts = [b.strip().split(".")[-1] for b in bases.split(",") if b.strip()]
                defined.setdefault(name, []).append((module, parts))
    errors = {"MedgossipError"}
    grew = True
    while grew:
        grew = False
        for name, definitions in defined.items():
            if name not in errors and any(set(bases) & errors for _, bases in definitions):
                errors.add(name)
                grew = True
    found: dict[str, type[BaseException]] = {}
    for name in sorted(errors):
        modules = [module for module, _ in defined[name]]
        assert len(modules) == 1, f"{name} is defined in {modules}: names must be unique"
        cls = getattr(importlib.import_module(modules[0]), name)
        assert issubclass(cls, MedgossipError), name
        found[name] = cls
    return found


def test_every_error_is_drawn_under_its_real_parent() -> None:
    drawn = _drawn_parents()
    classes = _project_errors()
    assert sorted(set(classes) - set(drawn)) == [], "defined but not drawn"
    assert sorted(set(drawn) - set(classes)) == [], "drawn but not defined"
    for name, cls in classes.items():
        parents = [base.__name__ for base in cls.__bases__ if issubclass(base, MedgossipError)]
        assert parents == ([drawn[name]] if drawn[name] is not None else []), name


def _is_os_error(name: str) -> bool:
    builtin = getattr(builtins, name, None)
    return isinstance(builtin, type) and issubclass(builtin, OSError)


def test_gossip_raises_only_its_own_errors() -> None:
    drawn = set(_drawn_parents())
    # Raised on purpose: the lazy module __getattr__ protocol, and libp2p's own errors
    # from the libp2p code paths gossip/_tuning.py replaces (libp2p's callers expect them).
    # OS errors of file helpers stay OSError: the CLI boundary reports them with the path.
    allowed = {("__init__.py", "AttributeError"), ("_tuning.py", "IncompleteReadError"),
               ("_tuning.py", "MuxedStreamError")}
    raised = re.compile(r"\braise (\w+)\(")
    strays = [
        f"{path.name}: {name}"
        for path in sorted((ROOT / "gossip").rglob("*.py"))
        for name in raised.findall(path.read_text(encoding="utf-8"))
        if name not in drawn and (path.name, name) not in allowed and not _is_os_error(name)
    ]
    assert strays == []

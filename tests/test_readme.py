"""The README's examples against the code: what they import, the keywords they pass and the
flags their command lines use must exist, so that a renamed argument cannot leave the README
showing one that fails.

The examples themselves are not run: most read the user's own data or download ImageNet weights.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
COMMAND = re.compile(r"(keras-species [a-z]+|python -m recipes\.[a-z0-9_]+)([^`\n]*)")


def _imports(tree: ast.AST) -> dict[str, object]:
    """The names a snippet imports from keras_species, resolved."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_species"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                value = getattr(module, alias.name, None)
                if value is None:  # a submodule: `from keras_species.data import sources`
                    value = importlib.import_module(f"{node.module}.{alias.name}")
                names[alias.asname or alias.name] = value
    return names


def test_the_readme_has_python_examples():
    assert len(PYTHON_BLOCKS) >= 10


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_example_imports_and_keywords_exist(index):
    tree = ast.parse(PYTHON_BLOCKS[index])  # a syntax error fails here
    names = _imports(tree)  # a missing module or name fails here
    wrong = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            target = names.get(func.id)
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = names.get(func.value.id)  # module.function(...)
            target = getattr(owner, func.attr, None) if inspect.ismodule(owner) else None
            if inspect.ismodule(owner) and target is None:
                wrong.append(f"{func.value.id}.{func.attr} does not exist")
        else:
            target = None
        if target is None or not callable(target):
            continue
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            continue
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            continue
        wrong += [f"{ast.unparse(func)}(... {k.arg}=...)" for k in node.keywords
                  if k.arg is not None and k.arg not in params]
    assert not wrong, f"README example {index + 1} uses what the code does not have: {wrong}"


def _parser(command: str) -> argparse.ArgumentParser:
    if command.startswith("keras-species "):
        from keras_species.cli import COMMANDS

        module = importlib.import_module(COMMANDS[command.split()[1]][0])
        parser = argparse.ArgumentParser()
        module.configure_parser(parser)
        return parser
    from keras_species.config import config_parser
    from keras_species.recipe import RunSettings

    module = importlib.import_module(command.split()[-1])
    configs = [c for c in vars(module).values() if isinstance(c, type) and dataclasses.is_dataclass(c)
               and issubclass(c, RunSettings) and c.__module__ == module.__name__]
    assert len(configs) == 1, f"{command}: one config class expected, found {configs}"
    return config_parser(configs[0])


def _command_lines() -> list[tuple[str, str]]:
    """Every ``keras-species CMD ...`` and ``python -m recipes.NAME ...`` in the README's code
    (fenced blocks and inline spans), with its flags (a backslash-continued line joined to the
    next)."""
    fenced = re.findall(r"```[a-z]*\n(.*?)```", README, re.S)
    prose = re.sub(r"```[a-z]*\n.*?```", "", README, flags=re.S)
    code = fenced + re.findall(r"`([^`\n]+)`", prose)  # fenced blocks and inline code spans
    text = "\n".join(code).replace("\\\n", " ")
    return [(m.group(1), m.group(2)) for m in COMMAND.finditer(text)]


def test_readme_command_lines_use_existing_commands_and_flags():
    from keras_species.cli import COMMANDS

    lines = _command_lines()
    assert len(lines) > 30
    parsers: dict[str, argparse.ArgumentParser] = {}
    wrong = []
    for command, rest in lines:
        if command.startswith("keras-species ") and command.split()[1] not in COMMANDS:
            wrong.append(f"{command}: no such command")
            continue
        if command not in parsers:
            parsers[command] = _parser(command)
        known = {s for a in parsers[command]._actions for s in a.option_strings}
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
            if flag not in known:
                wrong.append(f"{command} {flag}")
    assert not wrong, f"the README shows flags or commands that do not exist: {sorted(set(wrong))}"

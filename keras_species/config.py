"""Recipe configs: a dataclass is the single source of a recipe's settings.

``config_parser(Config)`` turns it into an ``argparse`` parser (every field a ``--flag`` with its
type, default and the help text from ``field(metadata=flag_help(...))``; bools as ``--x/--no-x``;
tuples and lists as several values, ``none`` for no value; ``Literal`` as choices; ``Optional``
accepting ``none``), ``parse_config(Config, argv)`` reads ``--config file.json`` first and lets
flags override it, and ``config_to_dict`` gives the JSON written to a run's ``config.json`` (which
``--config`` also reads back, so a run can be repeated from its folder). ``seed_everything`` seeds
a run.

No TensorFlow import at module level (``--help`` stays fast).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import functools
import json
import operator
import os
import random
import types
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np

from keras_species.jsonfile import read_json_file
from keras_species.terminal import (
    SuggestingArgumentParser,
    invalid_choice_message,
    unrecognized_arguments_message,
)

_NONE_WORDS = ("none", "None", "null")

INVOCATION_SETTINGS = ("name", "resume", "overwrite")
"""What a run folder's ``config.json`` records of the command that made the run, and that
``--config`` of that file leaves out: repeating a run makes a new one. Before, a run started with
``--overwrite`` or continued with ``--resume`` stored ``true``, and ``--config`` of its file
wiped and retrained that same run, or re-evaluated it, instead of repeating it."""


def config_to_dict(config: Any) -> Any:
    """A JSON-ready copy of ``config``: dataclasses → dicts, tuples → lists, paths → strings.

    Args:
        config: a dataclass instance, dict, list or scalar (numpy scalars and arrays included).

    Returns:
        Plain dicts, lists, strings, numbers, bools and None.

    Example:
        >>> @dataclasses.dataclass
        ... class C:
        ...     size: tuple[int, int] = (224, 224)
        ...     out: Path = Path("runs")
        >>> config_to_dict(C())
        {'size': [224, 224], 'out': 'runs'}
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {str(k): config_to_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple, set, frozenset)):
        return [config_to_dict(v) for v in config]
    if isinstance(config, PurePath):
        return str(config)
    if isinstance(config, enum.Enum):
        return config_to_dict(config.value)
    if isinstance(config, np.ndarray):
        return config.tolist()
    if isinstance(config, np.generic):
        return config.item()
    if isinstance(config, (str, int, float, bool)) or config is None:
        return config
    if isinstance(config, type):
        return config.__name__
    return repr(config)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) < len(get_args(tp)):
            return True, functools.reduce(operator.or_, args)
    return False, tp


def _scalar_converter(tp: Any):
    """A function str → value for a scalar type (None when ``tp`` is not scalar)."""
    if tp is bool:
        return _parse_bool
    if tp in (int, float, str):
        return tp
    if isinstance(tp, type) and issubclass(tp, PurePath):
        return Path
    if get_origin(tp) is Literal:
        values = get_args(tp)

        def literal(text: str):
            for v in values:
                if str(v) == text:
                    return v
            raise argparse.ArgumentTypeError(invalid_choice_message(text, [str(v) for v in values]))

        literal.__name__ = "choice"
        return literal
    if get_origin(tp) in (Union, types.UnionType):
        convs = [_scalar_converter(a) for a in get_args(tp)]
        if all(convs):
            order = sorted(convs, key=lambda c: c is str)  # try str last

            def union(text: str):
                for conv in order:
                    try:
                        return conv(text)
                    except (TypeError, ValueError, argparse.ArgumentTypeError):
                        continue
                raise argparse.ArgumentTypeError(f"cannot read {text!r} as {tp}")

            union.__name__ = str(tp)
            return union
    if tp is Any:
        return _json_or_str
    return None


def whole_number(low: int, high: int | None = None, hint: str = ""):
    """An ``argparse`` type: a whole number from ``low`` (to ``high``); ``hint`` ends its message.

    Args:
        low: the smallest value allowed.
        high: the largest value allowed (None: no bound).
        hint: words added to the message of a value out of range (e.g. what the number is).

    Returns:
        A function ``text -> int`` that raises ``argparse.ArgumentTypeError`` naming the value.

    Example:
        >>> whole_number(1, 100)("95")
        95
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            limits = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{text!r} must be {limits}" + (f" {hint}" if hint else ""))
        return value

    return parse


def positive_int(text: str) -> int:
    """An ``argparse`` type: a whole number >= 1 (thread counts, sizes, limits).

    Args:
        text: the flag's value.

    Returns:
        The number.

    Example:
        >>> positive_int("4")
        4
    """
    return whole_number(1)(text)


def _parse_bool(text: str) -> bool:
    low = str(text).lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _json_value(text: str):
    """A flag's JSON value, or argparse's error saying so with an example (it said ``invalid
    loads value``, which names a Python function, and the shell's lost quotes went unsaid)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not JSON ({err.msg}, character {err.pos + 1}): give it in single quotes, "
            "with its names in double quotes, as the flag's --help shows") from None


def _json_or_str(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _optional(conv, none: Any = None):
    """A flag's converter that reads ``none`` (or ``null``...) as ``none``, else calls ``conv``."""

    def inner(text: str):
        if text in _NONE_WORDS:
            return none
        return conv(text)

    inner.__name__ = getattr(conv, "__name__", "value")
    return inner


class _Empty:
    """What a lone ``none`` reads as in a flag of one or more values: the empty tuple or list."""

    def __repr__(self) -> str:
        return "none"


_EMPTY = _Empty()


def _empty_sequence(flag: str, value: Any) -> Any:
    """``[_EMPTY]`` (the flag given as ``none``) → ``[]``; ``none`` beside other values is refused."""
    if not isinstance(value, list) or not any(v is _EMPTY for v in value):
        return value
    if len(value) > 1:
        raise ValueError(f"{flag}: 'none' (no values) cannot stand beside other values {value}")
    return []


def _sequence_item(tp: Any) -> tuple[Any, Any] | None:
    """(item type, nargs) for tuple/list types, else None."""
    origin = get_origin(tp)
    if origin in (tuple,):
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0], "+"
        if args and len(set(args)) == 1:
            return args[0], len(args)
        return Any, "+"
    if origin in (list, Sequence, set, frozenset) or tp in (list, tuple):
        args = get_args(tp)
        return (args[0] if args else Any), "+"
    return None


def _dataclass_type(tp: Any) -> type | None:
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def _reads_as_number(text: str, whole: bool = False) -> bool:
    """Whether ``text`` is a number in quotes (``"0.001"``, ``"64"``; a whole one with ``whole``),
    not another word."""
    try:
        number = float(text)
    except ValueError:
        return False
    return not whole or number.is_integer()


def _what_to_give(tp: Any) -> str:
    """What a settings file gives for a field of type ``tp`` (the message for a ``null``)."""
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(json.dumps(c) for c in get_args(tp))
    seq = _sequence_item(tp)
    if seq is not None:
        nargs = seq[1]
        return f"a list of {nargs} values" if isinstance(nargs, int) else 'a list ([] or "none" for none)'
    return {str: 'a string in quotes, as the flag takes it (e.g. "none" for --weights none)',
            int: "a whole number", float: "a number", bool: "true or false"}.get(tp, "a value")


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert a JSON value (from a config file) to the field type ``tp``."""
    optional, inner = _is_optional(tp)
    if optional and isinstance(value, str) and value in _NONE_WORDS:  # as the flag takes "none"
        value = None
    if value is None:
        if optional or tp is Any:
            return None
        # it printed the Python type (`<class 'str'>`) and no fix
        raise ValueError(f"{where}: null is not allowed here: give {_what_to_give(tp)}")
    tp = inner
    sub = _dataclass_type(tp)
    if sub is not None:
        if isinstance(value, sub):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected an object for {sub.__name__}, got {value!r}")
        hints = get_type_hints(sub)
        known = {f.name for f in dataclasses.fields(sub) if f.init}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown} for {sub.__name__}; known: {sorted(known)}")
        return sub(**{k: _coerce(hints[k], v, f"{where}.{k}") for k, v in value.items()})
    seq = _sequence_item(tp)
    if seq is not None:
        item, nargs = seq
        if isinstance(value, str) and value in _NONE_WORDS and nargs == "+":  # as the flag: none
            value = []
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            value = [value]
        items = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(nargs, int) and len(items) != nargs:
            raise ValueError(f"{where}: expected {nargs} values, got {len(items)}")
        return tuple(items) if get_origin(tp) is tuple or tp is tuple else list(items)
    if get_origin(tp) is Literal:
        if value not in get_args(tp):
            raise ValueError(f"{where}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        try:
            return _parse_bool(value)
        except argparse.ArgumentTypeError as err:  # a config file's value: named with its key
            raise ValueError(f"{where}: {err}") from None
    if tp in (int, float) and isinstance(value, bool):  # JSON true is no learning rate of 1.0
        raise ValueError(f"{where}: expected {'a whole number' if tp is int else 'a number'}, got {value!r}")
    if tp is float and isinstance(value, (int, float)):
        return float(value)
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(tp, type) and issubclass(tp, PurePath):
        if not isinstance(value, str | PurePath):
            raise ValueError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    if tp in (int, float) and not isinstance(value, tp):  # "0.001" in a JSON file: a string
        quoted = isinstance(value, str) and _reads_as_number(value, whole=tp is int)
        raise ValueError(f"{where}: expected {'a whole number' if tp is int else 'a number'}, got "
                         f"{value!r}" + (" (write it without quotes)" if quoted else ""))
    if tp is str and not isinstance(value, tp):
        raise ValueError(f"{where}: expected a string, got {value!r}")
    return value


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def flag_help(
    text: str, after: str | None = None, refused: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The ``metadata`` of a config field whose ``--flag`` has ``text`` as its help.

    Args:
        text: the flag's help (``config_parser`` appends the default).
        after: list the flag right after the flag of this field in ``--help`` (a mixin's
            fields come before the subclass's in dataclass order; this puts, say, the reading
            options after ``--data``). Fields the config lacks are ignored.
        refused: values a ``Literal`` field leaves out of its choices although a user may
            expect them (say, a split kind that other commands take), each with why and what to
            give instead: the flag, a ``--config`` file and ``check_settings`` refuse such a
            value with that reason rather than a bare list of choices.

    Returns:
        ``{"help": text}`` (and ``"after"``, ``"refused"``), for
        ``dataclasses.field(metadata=...)``.

    Example:
        >>> flag_help("epochs of phase 1")
        {'help': 'epochs of phase 1'}
        >>> @dataclasses.dataclass
        ... class C:
        ...     epochs: int = dataclasses.field(default=5, metadata=flag_help("epochs of phase 1"))
    """
    meta: dict[str, Any] = {"help": text}
    if after is not None:
        meta["after"] = after
    if refused:
        meta["refused"] = dict(refused)
    return meta


def refusal(f: dataclasses.Field, value: Any) -> str | None:
    """Why the field ``f`` refuses ``value`` (its ``flag_help(refused=...)``), or None.

    Args:
        f: a config field.
        value: a value given for it (flag text, JSON value or Python value).

    Returns:
        The reason, with what to give instead; None when ``value`` is not a refused one.

    Example:
        >>> @dataclasses.dataclass
        ... class C:
        ...     split: Literal["auto"] = dataclasses.field(
        ...         default="auto", metadata=flag_help("split", refused={"systematic": "use auto"}))
        >>> refusal(dataclasses.fields(C)[0], "systematic")
        'use auto'
    """
    refused = f.metadata.get("refused") or {}
    return refused.get(value) if isinstance(value, str) else None


def _flag_order(fields: list[dataclasses.Field]) -> list[dataclasses.Field]:
    """``fields`` in dataclass order, each one with ``metadata["after"]`` moved behind the field
    it names (several behind one keep their order)."""
    names = {f.name for f in fields}
    moved: dict[str, list[dataclasses.Field]] = {}
    for f in fields:
        if f.metadata.get("after") in names:
            moved.setdefault(f.metadata["after"], []).append(f)
    out: list[dataclasses.Field] = []

    def place(f: dataclasses.Field) -> None:
        out.append(f)
        for g in moved.get(f.name, []):
            place(g)

    for f in fields:
        if f.metadata.get("after") not in names:
            place(f)
    return out


def _refusing(conv, f: dataclasses.Field):
    """``conv`` that first refuses the values of ``f``'s ``flag_help(refused=...)`` with their
    reason (``conv`` itself when there are none)."""
    if not f.metadata.get("refused"):
        return conv

    def inner(text: str):
        reason = refusal(f, text)
        if reason:
            raise argparse.ArgumentTypeError(f"{text!r} is not a choice here: {reason}")
        return conv(text)

    inner.__name__ = getattr(conv, "__name__", "value")
    return inner


def config_parser(
    config_cls: type, *, prog: str | None = None, description: str | None = None
) -> SuggestingArgumentParser:
    """An ``argparse`` parser with one ``--flag`` per field of the dataclass ``config_cls``.

    Field ``x_y`` becomes ``--x-y``; its help is ``field(metadata={"help": ...})`` plus the
    default. bool → ``--x/--no-x``; ``tuple[int, int]`` → two values; ``tuple[str, ...]`` /
    ``list[str]`` → one or more values, or ``none`` for none (``--head-units none``);
    ``Literal[...]`` → choices; ``X | None`` also accepts ``none``; a nested dataclass or ``dict`` takes a JSON object. ``--config FILE.json`` loads
    values first (see ``parse_config``). Fields without a default are required (by flag or file).

    Args:
        config_cls: the config dataclass.
        prog: program name for usage lines.
        description: parser description (default: the dataclass docstring's first line).

    Returns:
        The parser (a :class:`~keras_species.terminal.SuggestingArgumentParser`: each error is
        one line with the closest options or choices, and options are known by their whole
        name); its parsed namespace holds only the flags given (defaults are applied by
        ``parse_config``).

    Example:
        >>> @dataclasses.dataclass
        ... class C:
        ...     epochs: int = dataclasses.field(default=5, metadata={"help": "epochs"})
        >>> config_parser(C).parse_args(["--epochs", "3"]).epochs
        3
    """
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config_parser needs a dataclass, got {config_cls!r}")
    doc = (config_cls.__doc__ or "").strip().splitlines()
    # one-line errors with the closest options and choices, whole option names only
    parser = SuggestingArgumentParser(
        prog=prog,
        description=description or (doc[0] if doc else None),
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--config",
        metavar="FILE.json",
        help="read settings from a JSON file (a dict of fields, or a run's config.json, whose "
        "name, resume and overwrite are left out); the other flags override it wherever they "
        "stand",
    )
    hints = get_type_hints(config_cls)
    for f in _flag_order([f for f in dataclasses.fields(config_cls) if f.init]):
        tp = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        default = _field_default(f)
        text = f.metadata.get("help", "")
        if default is dataclasses.MISSING:
            text = f"{text} (required)".strip()
        elif "(default" not in text:  # a help that says its default itself keeps its words
            shown = json.dumps(config_to_dict(default)) if not isinstance(default, str) else default
            text = f"{text} (default: {shown})".strip()
        text = text.replace("%", "%%")
        optional, inner = _is_optional(tp)
        kwargs: dict[str, Any] = {"dest": f.name, "help": text}
        if inner is bool and not optional:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        seq = _sequence_item(inner)
        if seq is not None and _dataclass_type(seq[0]) is None:
            item, nargs = seq
            conv = _scalar_converter(item) or _json_or_str
            kwargs["nargs"] = nargs if not optional else ("*" if nargs == "+" else nargs)
            if optional:
                kwargs["type"] = _optional(conv)
            elif nargs == "+":  # `--head-units none`: no values (a field whose default is (), say)
                kwargs["type"] = _optional(conv, _EMPTY)  # a lone none: no values
            else:
                kwargs["type"] = conv
            kwargs["metavar"] = f.name.upper()
        elif _scalar_converter(inner) is not None:
            conv = _refusing(_scalar_converter(inner), f)
            kwargs["type"] = _optional(conv) if optional else conv
            if get_origin(inner) is Literal:
                kwargs["metavar"] = "{" + ",".join(str(v) for v in get_args(inner)) + "}"
        else:  # nested dataclass, dict, list of dataclasses: a JSON value
            kwargs["type"] = _optional(_json_value) if optional else _json_value
            kwargs["metavar"] = "JSON"
        parser.add_argument(flag, **kwargs)
    return parser


def parse_config(
    config_cls: type,
    argv: Sequence[str] | None = None,
    *,
    parser: argparse.ArgumentParser | None = None,
):
    """Build a ``config_cls`` from defaults, then ``--config FILE.json``, then the other flags.

    Args:
        config_cls: the config dataclass.
        argv: command-line arguments (default: ``sys.argv[1:]``).
        parser: a parser from ``config_parser`` (made here when None).

    Returns:
        A ``config_cls`` instance.

    Raises:
        SystemExit: (via argparse) for a bad flag, an unreadable file, an unknown key in the
            file, or a missing required field; the message names the file/key and the fix.

    Example:
        >>> @dataclasses.dataclass
        ... class C:
        ...     lr: float = 1e-3
        ...     size: tuple[int, int] = (224, 224)
        >>> parse_config(C, ["--size", "128", "96"])
        C(lr=0.001, size=(128, 96))
    """
    parser = parser or config_parser(config_cls)
    return config_from_flags(config_cls, parse_flags(parser, argv), parser=parser)


def parse_flags(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` once with a parser from ``config_parser``: the flags given, and only those.

    Args:
        parser: a parser from ``config_parser`` (its flags default to ``argparse.SUPPRESS``).
        argv: command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        A namespace holding the flags typed (``config`` for ``--config``), for
        :func:`config_from_flags`.

    Raises:
        SystemExit: (via argparse) an unknown option, with the ones it may mean, or a bad value.

    Example:
        >>> @dataclasses.dataclass
        ... class C:
        ...     lr: float = 1e-3
        ...     seed: int = 0
        >>> parse_flags(config_parser(C), ["--seed", "0"])
        Namespace(seed=0)
    """
    parsed, extra = parser.parse_known_args(argv)
    if extra:  # with the options they may mean (`parser` may be a plain argparse one)
        parser.error(unrecognized_arguments_message(parser, extra))
    return parsed


def config_from_flags(config_cls: type, flags: argparse.Namespace, *, parser: argparse.ArgumentParser):
    """Build a ``config_cls`` from defaults, then ``--config FILE.json``, then the other flags
    parsed (:func:`parse_flags`).

    Args:
        config_cls: the config dataclass.
        flags: the namespace :func:`parse_flags` returned (left unchanged).
        parser: the parser that parsed it, whose ``error`` reports a bad file or value.

    Returns:
        A ``config_cls`` instance.

    Raises:
        SystemExit: (via ``parser.error``) an unreadable ``--config`` file, an unknown key in
            it, a value of the wrong type, or a missing required field.

    Example:
        >>> @dataclasses.dataclass
        ... class C:
        ...     lr: float = 1e-3
        >>> parser = config_parser(C)
        >>> config_from_flags(C, parse_flags(parser, ["--lr", "0.1"]), parser=parser)
        C(lr=0.1)
    """
    ns = dict(vars(flags))
    hints = get_type_hints(config_cls)
    known = {f.name: f for f in dataclasses.fields(config_cls) if f.init}
    values: dict[str, Any] = {}
    path = ns.pop("config", None)
    if path is not None:
        data, reason = read_json_file(path)
        if reason:
            parser.error(f"--config {path}: cannot read it as JSON ({reason}); give a JSON object "
                         'of settings such as {"epochs": 5}, or a run folder\'s config.json')
        if isinstance(data, dict) and isinstance(data.get("config"), dict) and "recipe" in data:
            # a run folder's config.json: its settings, without how that run was invoked
            data = {k: v for k, v in data["config"].items() if k not in INVOCATION_SETTINGS}
        if not isinstance(data, dict):
            parser.error(f"--config {path}: expected a JSON object of settings")
        unknown = sorted(set(data) - set(known))
        if unknown:
            parser.error(
                f"--config {path}: unknown setting(s) {unknown}; remove them or rename to one "
                f"of: {', '.join(sorted(known))}"
            )
        for key, value in data.items():
            reason = refusal(known[key], value)
            if reason:
                parser.error(f"--config {path}: {key} {value!r} is not a choice here: {reason}")
            try:
                values[key] = _coerce(hints[key], value, f"{path}: {key}")
            except ValueError as err:
                parser.error(str(err))
    for key, value in ns.items():
        flag = f"--{key.replace('_', '-')}"
        try:
            values[key] = _coerce(hints[key], _empty_sequence(flag, value), flag)
        except ValueError as err:
            parser.error(str(err))
    missing = [n for n, f in known.items() if n not in values and _field_default(f) is dataclasses.MISSING]
    if missing:
        parser.error(f"missing required setting(s): {', '.join('--' + m.replace('_', '-') for m in missing)}")
    return config_cls(**values)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy and Keras/TensorFlow; optionally make TF ops deterministic.

    ``keras.utils.set_random_seed`` seeds the three generators; ``deterministic=True`` also calls
    ``tf.config.experimental.enable_op_determinism()`` (slower; some GPU ops then raise instead
    of running non-deterministically). ``PYTHONHASHSEED`` is set for child processes.

    Args:
        seed: the seed.
        deterministic: turn on TensorFlow op determinism.

    Returns:
        None.

    Example:
        >>> seed_everything(42, deterministic=True)  # doctest: +SKIP
    """
    import keras

    from keras_species.data.pipeline import check_seed

    seed = check_seed(seed)  # a NumPy integer as a Python int; True, 3.5 or -1 refused, named
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


__all__ = ["flag_help", "refusal", "config_parser", "parse_config", "parse_flags", "config_from_flags",
           "config_to_dict", "seed_everything"]

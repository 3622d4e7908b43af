"""What the command-line entry points (``keras-species`` and ``python -m recipes.<name>``) print.

Python prints a warning as ``/path/to/module.py:125: UserWarning: <message>`` followed by the
source line that raised it: for the library's own warnings, which are written for the user
(a class left without images, rows skipped, a split short of a class), the path and the code line
are noise. :func:`use_short_warnings` prints those as ``warning: <message>``; warnings raised by
other packages (NumPy, scikit-learn, Keras) keep Python's format, with their location. Written by
hand: ``warnings.formatwarning`` is the hook Python offers, and nothing wraps it.

:func:`use_command_line_warnings` does that and also leaves out PIL's
``DecompressionBombWarning``, which the library's reader turns into a report naming the file and
the fix (:func:`keras_species.data.images.read_image`): a command printed PIL's raw line first.
Only the entry points call it, since a filter applies to the whole process.

:func:`print_line_by_line` makes the entry points' output reach a pipe or a log file line by line
(Python writes those in blocks), so that a run killed outright keeps what it printed.

:class:`SuggestingArgumentParser` is the ``argparse`` parser of the entry points (the
``keras-species`` subcommands and, through :func:`keras_species.config.config_parser`, the
recipes): each error is one line, a mistyped option or choice answered with the closest ones the
command knows (``PROG: error: unrecognized arguments: --polcy (did you mean --policy?); see
--help``), without argparse's usage block.

Example:
    >>> use_command_line_warnings()                             # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import sys
import unicodedata
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

_OWN_CODE = (Path(__file__).resolve().parent, Path(__file__).resolve().parents[1] / "recipes")
_python_format = warnings.formatwarning


def is_own_code(filename: str) -> bool:
    """Whether a source file belongs to keras-species or its recipes.

    Args:
        filename: a source file's path (as in a traceback or a warning).

    Returns:
        True for files under the ``keras_species`` or ``recipes`` package.

    Example:
        >>> is_own_code(__file__), is_own_code(warnings.__file__)
        (True, False)
    """
    try:
        path = Path(filename).resolve()
    except (OSError, ValueError):
        return False
    return any(path.is_relative_to(folder) for folder in _OWN_CODE)


_GLYPH_MISSING = "missing from font"
_said: set[str] = set()


def _short_format(message, category, filename, lineno, line=None) -> str:
    if str(message).startswith("Glyph ") and _GLYPH_MISSING in str(message):
        # matplotlib warns once a character a plot's font lacks (a CJK or emoji class name),
        # blaming our plotting call: 9 lines for one audit; said once, in words, instead
        if "glyph" in _said:
            return ""
        _said.add("glyph")
        return ("warning: some names hold characters the plots' font lacks: the plots draw them "
                "as boxes (the tables, CSVs and reports keep them)\n")
    if not is_own_code(filename):
        return _python_format(message, category, filename, lineno, line)
    kind = "warning" if category is UserWarning else category.__name__
    return f"{kind}: {message}\n"


def use_short_warnings() -> None:
    """Print the library's own warnings as ``warning: <message>`` from now on (this process).

    Example:
        >>> use_short_warnings()                                # doctest: +SKIP
    """
    warnings.formatwarning = _short_format


def use_command_line_warnings() -> None:
    """The warning settings of the command-line entry points (this process, from now on): the
    library's warnings short (:func:`use_short_warnings`), PIL's ``DecompressionBombWarning``
    left out (the reader reports each oversized image itself, with the fix).

    Example:
        >>> use_command_line_warnings()                         # doctest: +SKIP
    """
    from PIL import Image

    use_short_warnings()
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def print_line_by_line() -> None:
    """Flush the standard output and error at every line, also when they are a pipe or a file
    (``python -m recipes.quickstart | tee log``), which Python writes in blocks: a run killed
    outright (SIGKILL, the kernel's out-of-memory killer) then keeps every line it printed. A
    character the output's encoding cannot show is escaped (``PYTHONIOENCODING=ascii``).

    Example:
        >>> print_line_by_line()                                # doctest: +SKIP
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # absent on some replaced streams
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                # a name an ASCII output cannot show is escaped (\xe9), as on the standard error:
                # it stopped split's table halfway and a finished run in a traceback
                reconfigure(line_buffering=True, errors="backslashreplace")


def working_folder_problem() -> str | None:
    """Why the working folder cannot be used: it was deleted after ``cd`` into it (every relative
    path, and some absolute ones, failed with a bare ``[Errno 2] No such file or directory``).

    Returns:
        The message, or ``None``.

    Example:
        >>> working_folder_problem() is None
        True
    """
    try:
        os.getcwd()
    except FileNotFoundError:
        return "the working folder no longer exists (deleted after cd into it?): cd into an existing folder"
    return None


def keras_backend_problem(environ: dict[str, str] | None = None) -> str | None:
    """Why Keras would fail to start: a ``KERAS_BACKEND`` (or ``~/.keras/keras.json``'s
    ``"backend"``) naming a backend that is not installed, or none Keras knows (a 54-line
    traceback from every command that imports Keras, and from the recipes).

    Args:
        environ: the environment (default ``os.environ``).

    Returns:
        The message, or ``None``.

    Example:
        >>> keras_backend_problem({"KERAS_BACKEND": "nosuch"})[:37]
        'KERAS_BACKEND=nosuch is not a backend'
    """
    import importlib.util
    import json

    env = os.environ if environ is None else environ
    backend, where = env.get("KERAS_BACKEND"), "KERAS_BACKEND="
    if not backend:
        home = env.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
        try:
            with open(os.path.join(home, "keras.json"), encoding="utf-8") as f:
                backend = json.load(f).get("backend")
            where = f"{os.path.join(home, 'keras.json')}'s \"backend\": "
        except (OSError, ValueError, AttributeError):
            return None
    if not isinstance(backend, str) or backend == "tensorflow":
        return None
    # what each backend imports (Keras's numpy backend imports jax too)
    modules = {"jax": ["jax"], "torch": ["torch"], "numpy": ["numpy", "jax"], "openvino": ["openvino"]}
    if where.startswith("KERAS_BACKEND"):
        fix = "unset KERAS_BACKEND (or set it to tensorflow): keras-species runs on TensorFlow"
    else:
        fix = (f"set \"backend\": \"tensorflow\" in {os.path.join(home, 'keras.json')}, or run with "
               "KERAS_BACKEND=tensorflow: keras-species runs on TensorFlow")
    if backend not in modules:
        return f"{where}{backend} is not a backend Keras knows ({', '.join(['tensorflow', *modules])}): {fix}"
    missing = [m for m in modules[backend] if importlib.util.find_spec(m) is None]
    if missing:
        return f"{where}{backend}, but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: {fix}"
    return None


PIPE_CLOSED = 141
"""The exit status of a command whose standard output was closed under it (``... | head``):
128 + SIGPIPE, what a tool that dies of the signal reports."""


def stdout_broken() -> bool:
    """Whether the standard output is a pipe whose reader has gone (``poll`` reports an error on
    it: Linux's ``POLLERR``), so that a ``BrokenPipeError`` is that and not another pipe's or
    socket's; False where it cannot be told (no ``poll``, no file descriptor).

    Returns:
        Whether writing to the standard output would fail with EPIPE.
    """
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def output_closed(err: BaseException) -> bool:
    """Whether ``err`` is the standard output closed under the command by its reader (``split ...
    | head -1``): a ``BrokenPipeError`` while :func:`stdout_broken`. If so, the output is
    pointed at ``os.devnull``, so that Python's flush at exit raises nothing more; the caller
    then ends with :data:`PIPE_CLOSED`. Python ignores SIGPIPE and raises ``BrokenPipeError``
    instead, which the commands used to report as an error (``[Errno 32] Broken pipe``, exit
    2); a broken pipe or socket of the command's own is not this.

    Args:
        err: the exception caught.

    Returns:
        Whether it is the closed standard output.
    """
    if not isinstance(err, BrokenPipeError) or not stdout_broken():
        return False
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return True


def _spelling(word: str) -> str:
    """``word`` in the one spelling names are compared in: lower case, ``_`` for ``-`` (the
    leading ``--`` of an option kept)."""
    head = "--" if word.startswith("--") else ""
    return head + word[len(head):].lower().replace("-", "_")


SAME_SETTING: dict[str, tuple[str, ...]] = {
    "--drop-list": ("--drop",), "--drop": ("--drop-list",),
    "--policy": ("--clean-policy", "--mixed-precision"), "--clean-policy": ("--policy",),
}
"""One setting under the names of ``audit`` and of the recipes: each command suggests its own
for the other's (``--drop-list x.txt`` on a recipe gave no hint of ``--drop``)."""


def close_options(parser: argparse.ArgumentParser, typed: str) -> list[str]:
    """The ``--options`` of ``parser`` that a mistyped one may have meant: close spellings
    (:func:`difflib.get_close_matches`), then options holding the typed word (``--size`` ->
    ``--image-size``).

    Args:
        parser: the parser that did not know ``typed``.
        typed: the argument as given (``"--polcy"``, ``"--ot=x"``).

    Returns:
        At most four option strings, the closest first; empty for an argument that is not an
        option (no leading ``--``) or that nothing resembles.

    Example:
        >>> p = argparse.ArgumentParser(); _ = p.add_argument("--policy")
        >>> close_options(p, "--polcy")
        ['--policy']
    """
    if not typed.startswith("--"):
        return []
    name = typed.split("=", 1)[0]
    word = name[2:].strip("-")
    # the parser's option strings: argparse keeps them only on its (private) actions
    options = [o for action in parser._actions for o in action.option_strings if o.startswith("--")]
    # `--top_k` for `--top-k`, `--Epochs` for `--epochs`: compared in one spelling
    spelled = {_spelling(o): o for o in options}
    near = [spelled[o] for o in difflib.get_close_matches(_spelling(name), spelled, n=2, cutoff=0.75)]
    near = [o for o in SAME_SETTING.get(name.lower().replace("_", "-"), ()) if o in options] + near
    if word:
        near += [o for o in options if word in o[2:].split("-") or o[2:].endswith(word)]
    meant: list[str] = []
    for option in near:
        if option.startswith("--no-") and f"--{option[5:]}" in near and not name.startswith("--no-"):
            continue  # `--backbone-plots` already names its `--no-` twin
        if option != name and option not in meant:
            meant.append(option)
    return meant[:4]


def unrecognized_arguments_message(parser: argparse.ArgumentParser, extra: Sequence[str]) -> str:
    """The error for arguments ``parser`` does not know, with the options they may have meant
    (:func:`close_options`).

    Args:
        parser: the parser.
        extra: the arguments left over (``parser.parse_known_args(...)[1]``).

    Returns:
        One line: ``unrecognized arguments: ... (did you mean ...?); see --help``.

    Example:
        >>> p = argparse.ArgumentParser(); _ = p.add_argument("--policy")
        >>> unrecognized_arguments_message(p, ["--polcy", "drop"])
        'unrecognized arguments: --polcy drop (did you mean --policy?); see --help'
    """
    meant: list[str] = []
    for arg in extra:
        meant += [o for o in close_options(parser, arg) if o not in meant]
    option = _option_for_value(parser)
    bare = bool(extra) and not extra[0].startswith("-") and not _is_number(extra[0])
    if option == "--out" and bare and _is_image_file(extra[0]):
        # `predict MODEL a.png b.png` (a shell's *.png): b.png is a second input, not the output;
        # "did you mean --out b.png?" had the CSV overwrite the photo. An earlier run's output
        # (`split DATA split.csv`) is still offered as --out
        return (f"unrecognized arguments: {' '.join(extra)} ({extra[0]} is an image: not an output "
                "name; the command takes one input: for several images give their folder, or a "
                ".txt list of paths); see --help")
    if option and bare:
        meant.insert(0, f"{option} {extra[0]}")  # `export MODEL exp/x.keras`: a path given bare
    hint = f" (did you mean {' or '.join(meant[:4])}?)" if meant else ""
    return f"unrecognized arguments: {' '.join(extra)}{hint}; see --help"


def _is_image_file(path: str) -> bool:
    """Whether ``path`` is an existing file with an image extension (the readers' list)."""
    from keras_species.data.sources import IMAGE_EXTENSIONS

    return os.path.isfile(path) and os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _is_number(text: str) -> bool:
    """Whether ``text`` reads as a number (one value too many for a flag, not a path)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _option_for_value(parser: argparse.ArgumentParser) -> str | None:
    """The option a value left over by ``parser`` (no ``--`` before it) most likely belongs to:
    ``--out`` where the inputs are positional (``export MODEL --out PATH``: a second path is the
    output), ``--data`` (or ``--labelled``) where nothing is (a recipe given its data set bare);
    else None."""
    options = {o for action in parser._actions for o in action.option_strings}
    positional = any(not action.option_strings for action in parser._actions
                     if not isinstance(action, argparse._SubParsersAction))
    if positional and "--out" in options:
        return "--out"
    if not positional:  # a recipe's data: --data, or fish_semisupervised's --labelled
        return next((o for o in ("--data", "--labelled") if o in options), None)
    return None


def invalid_choice_message(value: object, choices: Sequence[object]) -> str:
    """The error for a value that is not one of an option's choices, with the closest choices.

    Args:
        value: the value given.
        choices: the option's choices.

    Returns:
        ``invalid choice: 'conver' (did you mean 'convert'?); choose from 'convert', 'drop'``
        (no ``did you mean`` when nothing is close).

    Example:
        >>> invalid_choice_message("Convert", ["convert", "drop_non_rgb"])
        "invalid choice: 'Convert' (did you mean 'convert'?); choose from 'convert', 'drop_non_rgb'"
    """
    names = [str(c) for c in choices]
    # `per-tag` for `per_class`, `SKIP` for `skip`: compared in one spelling (`-`/`_`, case)
    spelled = {_spelling(n): n for n in names}
    close = [spelled[n] for n in difflib.get_close_matches(_spelling(str(value)), spelled, n=2, cutoff=0.6)]
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    return f"invalid choice: {value!r}{hint}; choose from {', '.join(map(repr, names))}"


_NOT_GIVEN = object()
"""The default a required option has while :meth:`SuggestingArgumentParser.parse_args` parses:
still there afterwards, the option was not given."""


def command_line_error(prog: str, message: str) -> str:
    """The one line every command-line error of a flag's value is printed as:
    ``PROG: error: <message>; see --help`` (no ``see --help`` added twice).

    The parsers' own errors (:meth:`SuggestingArgumentParser.error`) and the settings refused
    once parsed (a recipe's ``check_settings``, a ``keras-species`` subcommand's
    ``SettingError``) print this line, so that every bad flag value reads alike.

    Args:
        prog: the command (``"keras-species split"``, ``"python -m recipes.quickstart"``).
        message: what is wrong, with the fix (``"--seed -1: must be a whole number ..."``).

    Returns:
        The line, without its newline.

    Example:
        >>> command_line_error("demo", "--epochs 0: must be a whole number at least 1")
        'demo: error: --epochs 0: must be a whole number at least 1; see --help'
    """
    message = message.rstrip()
    if not message.endswith("see --help"):
        message = f"{message}; see --help"
    return f"{prog}: error: {message}"


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: East Asian wide and full-width characters (``日本``) take
    two, non-spacing and enclosing marks (the accent of a decomposed ``é``, Thai vowel signs) and
    format characters (zero-width joiners) none, so that a table of such names lines up
    (``split``'s class table, ``runs``). Emoji sequences joined by U+200D count each part.

    Args:
        text: the cell.

    Returns:
        Its width in columns.

    Example:
        >>> display_width("鯛 fish"), display_width("cafe\u0301")
        (7, 4)
    """
    text = unicodedata.normalize("NFC", text)  # macOS's decomposed Hangul: one wide syllable
    return sum(0 if unicodedata.category(c) in ("Mn", "Me", "Cf") else  # marks, joiners: no column
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


class SuggestingArgumentParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` whose errors suggest what was meant: an unknown option
    names the closest ones (:func:`unrecognized_arguments_message`), a value outside an
    option's choices the closest choices (:func:`invalid_choice_message`). Every error is one
    line, ``PROG: error: <message>; see --help``, with exit code 2: argparse's usage block
    (dozens of flags for a recipe) is left out, ``--help`` still prints it all. An option is
    known by its whole name only (``allow_abbrev=False``): a prefix such as ``--backbone`` is
    an unknown option answered with the ones it may mean (``--backbones``), not expanded
    silently or called ambiguous.

    The ``keras-species`` subcommands use it (:func:`keras_species.cli.main`), so each of their
    options is covered without a word in the subcommand's own ``configure_parser``.

    Example:
        >>> p = SuggestingArgumentParser(prog="keras-species audit")
        >>> _ = p.add_argument("--policy", choices=["convert", "drop_non_rgb"])
        >>> p.parse_args(["--polcy", "convert"])   # doctest: +SKIP
        keras-species audit: error: unrecognized arguments: --polcy convert (did you mean --policy?); see --help
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: <message>; see --help`` (one line, no usage block) and exit 2.

        Args:
            message: what is wrong, with the fix where known.

        Returns:
            Never: raises ``SystemExit(2)``.

        Example:
            >>> SuggestingArgumentParser(prog="demo").error("--epochs: 'x' is not a whole number")  # doctest: +SKIP
            demo: error: --epochs: 'x' is not a whole number; see --help
        """
        self.exit(2, command_line_error(self.prog, message) + "\n")

    def parse_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):
        """``argparse.ArgumentParser.parse_args``, naming the closest options of unknown ones.

        Args:
            args: the arguments (default ``sys.argv[1:]``).
            namespace: the object to fill (default a new ``argparse.Namespace``).

        Returns:
            The namespace.

        Example:
            >>> SuggestingArgumentParser().parse_args([])
            Namespace()
        """
        args = sys.argv[1:] if args is None else list(args)
        # unknown arguments before missing options: `export MODEL x.keras` (no --out) is told
        # that x.keras belongs after --out, not only that --out is missing. argparse refuses a
        # missing required option before it returns the unknown arguments, so those options are
        # made optional for the one parse, with a default that marks them as not given.
        required = [a for a in self._actions if a.required and a.option_strings]
        defaults = [a.default for a in required]
        for action in required:
            action.required, action.default = False, _NOT_GIVEN
        self._relaxed = required  # --help during the parse still shows them as required
        try:
            parsed, extra = self.parse_known_args(args, namespace)
        finally:
            self._relaxed = []
            for action, default in zip(required, defaults):
                action.required, action.default = True, default
        if extra:
            self.error(unrecognized_arguments_message(self, extra))
        missing = ["/".join(a.option_strings) for a in required
                   if getattr(parsed, a.dest, None) is _NOT_GIVEN]
        if missing:  # argparse's own words
            self.error(f"the following arguments are required: {', '.join(missing)}")
        return parsed

    def format_usage(self) -> str:
        with self._as_declared():
            return super().format_usage()

    def format_help(self) -> str:
        with self._as_declared():
            return super().format_help()

    @contextlib.contextmanager
    def _as_declared(self) -> Iterator[None]:
        """The options :meth:`parse_args` relaxed for its parse, required again while a usage
        or help text is made (``export --help`` showed ``[--out PATH]``, as if optional)."""
        relaxed = [a for a in getattr(self, "_relaxed", []) if not a.required]
        for action in relaxed:
            action.required = True
        try:
            yield
        finally:
            for action in relaxed:
                action.required = False

    def _check_value(self, action: argparse.Action, value: object) -> None:
        # argparse's hook for `choices` (a private method, the one place every choice passes)
        if action.choices is not None and value not in action.choices:
            raise argparse.ArgumentError(action, invalid_choice_message(value, list(action.choices)))

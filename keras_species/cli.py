"""The ``keras-species`` command: one subcommand per stage, each defined beside its stage.

Every subcommand module exposes ``configure_parser(parser)`` and ``run_cli(args) -> int``; it is
imported only when its subcommand runs, so that ``--help``, a mistyped command and the data
commands that need no model (``audit``, ``split``, ``runs``) never import Keras or TensorFlow
(``import keras_species`` does not: :mod:`keras_species.registration`).
"""

from __future__ import annotations

import difflib
import importlib
import sys

from keras_species.tensorflow_start import quiet_tensorflow_start
from keras_species.terminal import (
    PIPE_CLOSED,
    SuggestingArgumentParser,
    command_line_error,
    keras_backend_problem,
    output_closed,
    print_line_by_line,
    use_command_line_warnings,
    working_folder_problem,
)

COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("keras_species.data.audit", "scan a data set: modes, sizes, corrupt files, duplicates, counts"),
    "split": ("keras_species.data.splits", "split a data set (stratified, group-aware, multi-label, k-fold) into a CSV"),
    "shard": ("keras_species.data.shards", "write a data set to TFRecord shards"),
    "models": ("keras_species.models.listing", "list the backbones of the registry"),
    "runs": ("keras_species.training.runs", "list past runs as one table"),
    "predict": ("keras_species.predict", "predict images with a trained model"),
    "export": ("keras_species.export", "export a model to .keras, SavedModel or TFLite"),
}


KERAS_COMMANDS = frozenset({"models", "predict", "export", "shard"})
"""The commands that import Keras or TensorFlow, which imports Keras
(:func:`keras_species.terminal.keras_backend_problem` is checked before them)."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``keras-species``; returns the process exit code.

    An error a user can fix (:func:`keras_species.recipe.is_user_error`: bad data, a missing
    input, an output that cannot be written, a value the library refuses) prints its message
    without a traceback and returns 2; a flag value a subcommand refuses
    (:class:`keras_species.recipe.SettingError`) reads as the parser's errors,
    ``keras-species NAME: error: <message>; see --help``; any other error keeps its traceback. Ctrl-C prints one
    line and returns 130. A mistyped command, option or choice is answered with the closest
    ones (:class:`keras_species.terminal.SuggestingArgumentParser`), exit code 2.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Returns:
        The exit code.

    Example:
        >>> main(["split", "demo", "--out", "split.csv"])   # doctest: +SKIP
        0
    """
    commands = COMMANDS
    parser = SuggestingArgumentParser(
        prog="keras-species",
        description="Audit, split and shard image data sets, list runs, predict with and export "
                    "trained species classifiers (training: python -m recipes.<name>, see the README).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, helptext) in commands.items():
        sub.add_parser(name, help=helptext, add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        if argv and argv[0] not in ("-h", "--help"):  # one line, as every parser error
            close = difflib.get_close_matches(argv[0], list(commands), n=2, cutoff=0.6)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            print(command_line_error("keras-species", f"unknown command {argv[0]!r}{hint}; "
                                     f"choose from {', '.join(commands)}"), file=sys.stderr)
            return 2
        parser.print_help()
        return 0
    name = argv[0]
    use_command_line_warnings()
    print_line_by_line()
    problem = working_folder_problem() or (keras_backend_problem() if name in KERAS_COMMANDS else None)
    if problem:
        print(f"keras-species {name}: {problem}", file=sys.stderr)
        return 2
    quiet_tensorflow_start()  # if the command imports TensorFlow: without its start-up lines
    try:
        module = importlib.import_module(commands[name][0])
        # a mistyped option or choice is answered with the closest ones the subcommand knows
        cmd_parser = SuggestingArgumentParser(prog=f"keras-species {name}", description=commands[name][1])
        module.configure_parser(cmd_parser)
        args = cmd_parser.parse_args(argv[1:])
        return int(module.run_cli(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C: one line, not TensorFlow's stack
        print(f"keras-species {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # what a subcommand did not catch itself
        from keras_species.recipe import SettingError, is_user_error

        if output_closed(err):  # `... | head`: no error of ours
            return PIPE_CLOSED

        if isinstance(err, SettingError):  # a flag's value: as the parser's errors, see --help
            print(command_line_error(f"keras-species {name}", str(err)), file=sys.stderr)
        elif is_user_error(err):
            print(f"keras-species {name}: {err}", file=sys.stderr)
        else:
            raise
        return 2


if __name__ == "__main__":
    sys.exit(main())

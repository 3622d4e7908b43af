"""``keras-species models``: the backbone registry as a table (text or Markdown).

:func:`markdown_table` also generates the models table of ``README.md`` (between the markers
``<!-- models-table:start -->`` and ``<!-- models-table:end -->``; a test checks they agree).
"""

from __future__ import annotations

import argparse
import sys

COLUMNS = ("Name", "Family", "Input", "Parameters", "Preprocessing", "Weights")


def _params(value: int | None) -> str:
    return "?" if value is None else f"{value / 1e6:.1f} M"


def _weights(spec) -> str:
    sources = ["none", "local file"]
    if "imagenet" in spec.weight_sources:
        sources.append(f"imagenet ({spec.weights_origin})" if spec.weights_origin else "imagenet")
    return ", ".join(sources)


def rows(family: str | None = None) -> list[tuple[str, ...]]:
    """One row of :data:`COLUMNS` per registry entry (optionally of one family).

    Example:
        >>> rows("ResNet (torchvision)")[0][:3]
        ('resnet18', 'ResNet (torchvision)', '224')
    """
    from keras_species.models import list_backbones

    return [
        (
            s.name,
            s.family,
            str(s.default_size),
            _params(s.params),
            s.preprocessing,
            _weights(s),
        )
        for s in list_backbones(family)
    ]


def markdown_table(family: str | None = None) -> str:
    """The registry as a Markdown table (the README's models table).

    Args:
        family: only this family; all entries when ``None``.

    Returns:
        The table, one line per entry, ending with a newline.

    Example:
        >>> markdown_table().splitlines()[0]
        '| Name | Family | Input | Parameters | Preprocessing | Weights |'
    """
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join((f"`{r[0]}`", *r[1:])) + " |" for r in rows(family)]
    return "\n".join(lines) + "\n"


def text_table(family: str | None = None) -> str:
    """The registry as an aligned plain-text table.

    Example:
        >>> text_table().split()[0]
        'Name'
    """
    table = [COLUMNS, *rows(family)]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    return (
        "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table) + "\n"
    )


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``keras-species models``."""
    parser.add_argument("--family", default=None, help="only this family (e.g. ConvNeXt)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")


def run_cli(args: argparse.Namespace) -> int:
    """Print the table; returns 1 when ``--family`` matches no entry."""
    from keras_species.models import list_backbones

    try:
        list_backbones(args.family)
    except KeyError as err:
        print(f"keras-species models: {err.args[0]}", file=sys.stderr)
        return 2  # a value the user can fix, as every command's
    print(markdown_table(args.family) if args.markdown else text_table(args.family), end="")
    return 0

"""`keras-species models` and the README models table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from keras_species.cli import main
from keras_species.models import list_backbones
from keras_species.models.listing import markdown_table, text_table

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- models-table:start -->", "<!-- models-table:end -->"


def test_markdown_table_has_one_row_per_entry():
    lines = markdown_table().strip().splitlines()
    assert lines[0].startswith("| Name | Family | Input | Parameters")
    assert len(lines) == 2 + len(list_backbones())
    row = next(line for line in lines if line.startswith("| `vgg16` |"))
    assert "| VGG | 224 | 14.7 M | caffe |" in row and "imagenet" in row


def test_cli_lists_a_family(capsys):
    assert main(["models", "--family", "VGG"]) == 0
    out = capsys.readouterr().out
    assert "vgg16" in out and "vgg19" in out and "resnet50" not in out
    assert main(["models", "--markdown"]) == 0
    assert capsys.readouterr().out == markdown_table()


def test_cli_unknown_family(capsys):
    assert main(["models", "--family", "NoSuchNet"]) == 2  # a value the user can fix, as elsewhere
    err = capsys.readouterr().err
    assert err.startswith("keras-species models: no backbone family 'NoSuchNet'; the families: ")


def test_text_table_is_aligned():
    lines = text_table().splitlines()
    assert lines[0].split()[:3] == ["Name", "Family", "Input"]
    assert any(re.match(r"^resnet18\s+ResNet \(torchvision\)\s+224\s+11\.2 M", la) for la in lines)


def test_readme_table_is_generated():
    text = README.read_text(encoding="utf-8") if README.is_file() else ""
    if START not in text or END not in text:
        pytest.skip(f"README.md has no {START} … {END} markers yet")
    between = text.split(START, 1)[1].split(END, 1)[0]
    assert between.strip() == markdown_table().strip(), (
        "README models table is stale: paste `keras-species models --markdown` between the markers"
    )

"""Manifest persistence: saved CSV/JSON round trips, and saved files a user edited by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keras_species.data.manifest import Manifest, ManifestError


def _manifest(multilabel: bool = False) -> Manifest:
    paths = ["/d/cat/a.jpg", "/d/dog/b.jpg", "/d/dog/c.jpg"]
    labels = np.array([[1, 0], [0, 1], [1, 1]]) if multilabel else np.array([0, 1, 1])
    return Manifest(paths, labels, ["cat", "dog"], groups=["g1", "g2", "g2"], splits=["train", "val", "test"])


@pytest.mark.parametrize("multilabel", [False, True])
def test_csv_round_trip_survives_an_excel_save(tmp_path: Path, multilabel: bool) -> None:
    m = _manifest(multilabel)
    path = Path(m.to_csv(tmp_path / "m.csv"))
    text = path.read_text(encoding="utf-8").replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # BOM and CRLF, as Excel writes
    back = Manifest.from_csv(path)
    assert back.paths == m.paths and back.labels.tolist() == m.labels.tolist()
    assert (back.class_names, back.groups, back.splits) == (m.class_names, m.groups, m.splits)


def test_a_label_edited_to_a_name_not_in_the_class_list_is_named(tmp_path: Path) -> None:
    path = Path(_manifest().to_csv(tmp_path / "m.csv"))
    path.write_text(path.read_text().replace("/d/dog/c.jpg,dog", "/d/dog/c.jpg,Dog"))
    with pytest.raises(ManifestError, match=r"m.csv, row 5: label 'Dog' is not one of the classes .*'cat', 'dog'"):
        Manifest.from_csv(path)


def test_a_broken_header_line_is_named(tmp_path: Path) -> None:
    path = Path(_manifest().to_csv(tmp_path / "m.csv"))
    path.write_text(path.read_text().replace('["cat", "dog"]', '["cat", dog]'))
    with pytest.raises(ManifestError, match="its first line .* must read '# classes:"):
        Manifest.from_csv(path)


def test_a_multilabel_class_name_holding_the_tag_separator_is_refused(tmp_path: Path) -> None:
    m = Manifest(["/a.jpg"], np.array([[1, 0]]), ["a;b", "c"])
    with pytest.raises(ManifestError, match=r"class name 'a;b' holds ';'.*to_json"):
        m.to_csv(tmp_path / "m.csv")
    back = Manifest.from_json(m.to_json(tmp_path / "m.json"))
    assert back.class_names == ["a;b", "c"] and back.labels.tolist() == [[1, 0]]

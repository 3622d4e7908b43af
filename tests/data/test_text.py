"""read_text: UTF-8 with or without a BOM, UTF-16 with one, anything else named with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from keras_species.data.manifest import ManifestError
from keras_species.data.text import read_text


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_the_encodings_editors_write_are_read(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "t.txt"
    data = "path,label\r\nä.jpg,Gründling\r\n".encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):  # with the byte-order mark an editor writes
        data = ("\ufeff" + "path,label\r\nä.jpg,Gründling\r\n").encode(encoding)
    path.write_bytes(data)
    assert read_text(path) == "path,label\r\nä.jpg,Gründling\r\n"


def test_windows_1252_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "drop.txt"
    path.write_bytes("a.jpg\nb.jpg\nré.jpg\n".encode("cp1252"))
    with pytest.raises(ManifestError, match=r"drop.txt is not UTF-8 text \(byte 0xe9 on line 3\)"):
        read_text(path)


def test_a_bad_byte_after_a_byte_order_mark_is_named_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "a.jpg\nb.jpg\nré.jpg\n".encode("cp1252"))
    with pytest.raises(ManifestError, match=r"list.txt is not UTF-8 text \(byte 0xe9 on line 3\)"):
        read_text(path)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_limit_reads_the_start_and_leaves_out_a_character_it_cuts(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "long.txt"
    text = "path,label\n" + "Gründling/ä.jpg,Gründling\n" * 1000
    path.write_bytes(text.encode(encoding))
    for limit in range(20, 40):  # some of these cut 'ü' or 'ä' (or a UTF-16 code unit) in two
        start = read_text(path, limit=limit)
        assert text.startswith(start) and len(text) - len(start) > 100, limit
    assert read_text(path, limit=10**7) == read_text(path) == text

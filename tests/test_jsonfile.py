"""Reading JSON files that may be damaged: the value, or one line saying why it does not read."""

from __future__ import annotations

import pytest

from keras_species.jsonfile import kind_problem, parse_json, read_json_file, read_json_object

DAMAGED = {
    b'{"recipe": "quickstart", "crea': "not valid JSON (Unterminated string starting at line 1 column 26)",
    b'{"a": 1,': "not valid JSON (Expecting property name enclosed in double quotes at line 1 column 9)",
    b"": "empty file",
    b" \n": "empty file",
    b"\xff\xfe{\x00}": "not UTF-8 text (byte 0xff at offset 0)",
    b'{"a": "caf\xe9"}': "not UTF-8 text (byte 0xe9 at offset 10)",
}


@pytest.mark.parametrize("data", list(DAMAGED))
def test_a_damaged_document_gives_one_line_saying_why(data):
    assert parse_json(data) == (None, DAMAGED[data])
    assert " at at " not in DAMAGED[data]  # the decoder's message ends in "at" itself


def test_a_document_that_reads_with_or_without_a_byte_order_mark():
    assert parse_json(b'{"a": [1, 2]}') == ({"a": [1, 2]}, None)
    assert parse_json(b'\xef\xbb\xbf{"a": 1}') == ({"a": 1}, None)  # as Notepad saves UTF-8
    assert parse_json('\ufeff["x"]') == (["x"], None)


def test_the_kind_of_value_is_checked():
    assert kind_problem({"a": 1}, dict) is None
    assert kind_problem([1], dict) == "holds a JSON array, not an object"
    assert kind_problem(None, (dict, list)) == "holds a JSON null, not an object or an array"
    assert kind_problem("x", list) == "holds a JSON string, not an array"


def test_files_missing_a_folder_or_of_another_kind(tmp_path):
    assert read_json_file(tmp_path / "none.json") == (None, "does not exist")
    assert read_json_file(tmp_path) == (None, "is a folder")
    path = tmp_path / "x.json"
    path.write_bytes(b"[1, 2]")
    assert read_json_file(path) == ([1, 2], None)
    assert read_json_file(path, dict) == (None, "holds a JSON array, not an object")
    assert read_json_object(path) == ({}, "holds a JSON array, not an object")
    assert read_json_object(tmp_path / "none.json") == ({}, None)  # absent: nothing to say
    path.write_bytes(b'{"a": "b')
    assert read_json_object(path) == ({}, "not valid JSON (Unterminated string starting at line 1 "
                                          "column 7)")

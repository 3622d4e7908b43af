import csv
import io
from pathlib import PurePosixPath

from keras_species import csvfile


def _read_back(text):
    return list(csv.reader(io.StringIO(text, newline="")))


def test_rows_end_in_line_feed():
    buf = io.StringIO(newline="")
    csvfile.writer(buf).writerows([["a.png", 1], ["b.png", 2.5]])
    assert buf.getvalue() == "a.png,1\nb.png,2.5\n"


def test_a_string_holding_a_carriage_return_reads_back_as_one_row():
    buf = io.StringIO(newline="")
    csvfile.writer(buf).writerow(["odd\rname.png", "test"])
    assert _read_back(buf.getvalue()) == [["odd\rname.png", "test"]]


def test_a_path_holding_a_carriage_return_reads_back_as_one_row():
    # csv writes str(value) for a Path; its carriage return must be quoted as a string's is
    buf = io.StringIO(newline="")
    csvfile.writer(buf).writerow([PurePosixPath("dir/odd\rname.png"), None, 3])
    assert _read_back(buf.getvalue()) == [["dir/odd\rname.png", "", "3"]]


def test_dict_writer_quotes_a_carriage_return_too():
    buf = io.StringIO(newline="")
    out = csvfile.dict_writer(buf, ["path", "label"])
    out.writeheader()
    out.writerow({"path": PurePosixPath("x\ry.png"), "label": "cod"})
    assert _read_back(buf.getvalue()) == [["path", "label"], ["x\ry.png", "cod"]]

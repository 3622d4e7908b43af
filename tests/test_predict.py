"""Prediction: inputs (file, folder, CSV, list), models (Keras, .keras, run folder, SavedModel),
streaming, skipped files, multi-label thresholds, TTA and the CLI."""

from __future__ import annotations

import csv
import os
import re
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_species import cli, cpu_budget
from keras_species.data import images as images_mod
from keras_species.data import sources
from keras_species.data.manifest import ManifestError
from keras_species.data.pipeline import resize_image
from keras_species.evaluation.tta import predict_tta
from keras_species.export import export_model
from keras_species.models.labels import ClassifierOutput, LabelMap, LabelMapError
from keras_species.predict import (
    files_not_predicted,
    image_dataset,
    iter_image_paths,
    iter_predictions,
    links_not_followed,
    open_predictor,
    predict,
)
from tests.conftest import write_image_folder, write_png_header

NAMES = ["cod", "eel", "ray"]
SIZE = 16


def _tiny_model(activation: str = "softmax", thresholds=None, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0, name="preprocessing")(inp)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(3, name="label_logits")(x)
    out = ClassifierOutput(activation, NAMES, thresholds=thresholds, name="label")(x)
    return keras.Model(inp, out, name="tiny")


def _expected(model, paths) -> np.ndarray:
    """The probabilities from the training pipeline's decoding: read_image + resize_image + round."""
    x = []
    for p in paths:
        img = resize_image(tf.constant(images_mod.read_image(p), tf.float32), SIZE).numpy()
        x.append(np.floor(img + 0.5))
    return np.asarray(model(np.stack(x).astype(np.float32)))


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return _tiny_model()


@pytest.fixture
def folder(tmp_path) -> Path:
    """3 classes x 4 images (40x32) in sub-folders, one empty .png, one .txt (ignored)."""
    root = write_image_folder(tmp_path / "imgs", per_class=4)
    (root / "eel" / "broken.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    return root


def test_iter_image_paths_inputs(folder, tmp_path):
    paths = list(iter_image_paths(folder))
    assert len(paths) == 13 and all(p.endswith(".png") for p in paths)
    assert paths == sorted(paths)
    assert list(iter_image_paths(paths[0])) == [paths[0]]
    rel = [str(Path(p).relative_to(tmp_path)) for p in paths[:3]]
    (tmp_path / "list.csv").write_text("id,filepath\n" + "".join(f"{i},{p}\n" for i, p in enumerate(rel)))
    assert list(iter_image_paths(tmp_path / "list.csv")) == [str(tmp_path / p) for p in rel]
    (tmp_path / "nopath.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="path column"):
        list(iter_image_paths(tmp_path / "nopath.csv"))
    with pytest.raises(FileNotFoundError):
        list(iter_image_paths(tmp_path / "missing"))


def _two_layouts(tmp_path: Path) -> tuple[Path, Path]:
    """The shared data sets' layouts: ``aq/labels.csv`` naming files in ``aq/images/`` (as
    aquarium_multilabel), ``hy/split.csv`` with ``class`` and ``file`` columns (as hymenoptera)."""
    aq = tmp_path / "aq"
    write_image_folder(aq / "pool", per_class=1)
    (aq / "images").mkdir()
    lines = ["filename,split,labels"]
    for i, img in enumerate(sorted((aq / "pool").rglob("*.png"))):
        img.rename(aq / "images" / f"{i}.png")
        lines.append(f"{i}.png,train,{NAMES[i]}")
    (aq / "labels.csv").write_text("\n".join(lines) + "\n")
    hy = write_image_folder(tmp_path / "hy", per_class=2)
    rows = [f"train,{p.parent.name},{p.name}" for p in sorted(hy.rglob("*.png"))]
    (hy / "split.csv").write_text("split,class,file\n" + "\n".join(rows) + "\n")
    return aq / "labels.csv", hy / "split.csv"


def test_a_csv_resolves_its_paths_as_the_data_readers_do(folder, tmp_path):
    aq, hy = _two_layouts(tmp_path)
    assert list(iter_image_paths(aq)) == sources.from_csv(aq).paths  # found in aq/images/
    assert all(Path(p).is_file() for p in iter_image_paths(aq))
    fmt = "{class}/{file}"
    assert list(iter_image_paths(hy, path_format=fmt)) == sources.from_csv(hy, path_format=fmt).paths
    # --root, and a CSV written on Windows (backslashes)
    rel = [Path(p).relative_to(folder).as_posix() for p in iter_image_paths(folder)
           if not p.endswith("broken.png")][::3]
    listed = tmp_path / "elsewhere" / "list.csv"
    listed.parent.mkdir()
    listed.write_text("path,label\n" + "".join(f"{r.replace('/', chr(92))},{r.split('/')[0]}\n"
                                               for r in rel))
    expected = sources.from_csv(listed, root=folder).paths
    assert list(iter_image_paths(listed, root=folder)) == expected == [str(folder / r) for r in rel]
    with pytest.raises(ValueError, match=re.escape(
            f"{folder} is not a CSV, to which root does not apply: leave it out (root says where a "
            "CSV's or list's relative paths start)")):
        list(iter_image_paths(folder, root=tmp_path))
    with pytest.raises(ValueError, match=re.escape(
            "a list of paths is not a CSV, to which path_format does not apply: leave it out "
            "(path_format builds a CSV's paths from its columns)")):
        predict(_tiny_model(), [str(folder / rel[0])], path_format=fmt)


def test_cli_predicts_the_data_sets_own_csvs(model, tmp_path, capsys):
    aq, hy = _two_layouts(tmp_path)
    model.save(tmp_path / "m.keras")
    for args, n in (([str(aq)], 3), ([str(hy), "--path-format", "{class}/{file}"], 6),
                    ([str(hy), "--root", str(hy.parent / "cod"), "--path-format", "{file}"], 6)):
        out = tmp_path / "p.csv"
        code = cli.main(["predict", str(tmp_path / "m.keras"), *args, "--out", str(out)])
        rows = _read_csv(out)
        errors = [r["error"] for r in rows if r["error"]]
        if "--root" in args:  # only the cod files are under --root: the others keep their row
            assert code == 0 and len(rows) == n and len(errors) == 4
            assert set(errors) == {"file not found"}
        else:
            assert code == 0 and len(rows) == n and errors == [], (args, errors)
    assert "nothing was predicted" not in capsys.readouterr().err


def test_a_csv_is_read_by_the_data_readers_rules(folder, tmp_path):
    good = [p for p in iter_image_paths(folder) if not p.endswith("broken.png")][:2]
    twice = tmp_path / "twice.csv"
    twice.write_text(f"path,label,path\n{good[0]},cod,{good[1]}\n")
    with pytest.raises(ManifestError, match="column 'path' appears more than once"):
        list(iter_image_paths(twice))
    hole = tmp_path / "hole.csv"
    hole.write_text(f"path,label\n{good[0]},cod\n,eel\n\n{good[1]},ray\n")
    with pytest.raises(ManifestError, match=r"hole.csv: empty file path on line\(s\) \[3\]"):
        list(iter_image_paths(hole))
    semi = tmp_path / "semi.csv"
    semi.write_text(f"path;label\n{good[0]};cod\n{good[1]};eel\n")
    assert list(iter_image_paths(semi)) == good
    many = tmp_path / "many.csv"
    many.write_text(f"path,label\n{good[0]},cod,extra\n")
    with pytest.raises(ManifestError, match=r"more fields than the header's 2 columns \(line 2\)"):
        list(iter_image_paths(many))


def test_cli_exits_2_when_nothing_was_predicted(model, folder, tmp_path, capsys):
    model.save(tmp_path / "m.keras")
    out = tmp_path / "p.csv"

    def run(inputs: Path) -> tuple[int, str]:
        capsys.readouterr()
        code = cli.main(["predict", str(tmp_path / "m.keras"), str(inputs), "--out", str(out)])
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, captured
        return code, captured.err.strip()

    missing = tmp_path / "missing.csv"
    missing.write_text("filename\na.png\nb.png\nc.png\nd.png\n")
    code, err = run(missing)
    assert code == 2 and err.startswith(
        f"keras-species predict: nothing was predicted: none of the 4 file(s) could be read "
        f"(line 2: {tmp_path / 'a.png'}: file not found; line 3: {tmp_path / 'b.png'}: file not "
        f"found; line 4: {tmp_path / 'c.png'}: file not found ...) (if the CSV's paths start "
        "elsewhere, pass --root DIR")
    assert err.endswith(f"their rows, with the reason in the 'error' column, are in {out}")
    assert [r["error"] for r in _read_csv(out)] == ["file not found"] * 4  # written as before
    (folder / "cod").rename(tmp_path / "cod")  # the broken file alone: unreadable, not missing
    (folder / "ray").rename(tmp_path / "ray")
    for img in (folder / "eel").glob("fish_*"):
        img.unlink()
    code, err = run(folder)
    assert code == 2 and "none of the 1 file(s) could be read" in err and "--root" not in err
    (folder / "eel" / "broken.png").unlink()
    code, err = run(folder)
    assert code == 2 and err == (
        f"keras-species predict: nothing was predicted: no images found in {folder} (1 file(s) "
        f"whose extension is not an image extension, e.g. {folder / 'notes.txt'})")
    assert [r for r in _read_csv(out)] == []
    header_only = tmp_path / "header.csv"
    header_only.write_text("path,label\n")
    code, err = run(header_only)
    assert code == 2 and err == (f"keras-species predict: nothing was predicted: {header_only} lists "
                                 "no files (a header but no rows)")


def test_a_text_file_lists_images_one_per_line(model, folder, tmp_path, capsys):
    good = [p for p in iter_image_paths(folder) if not p.endswith("broken.png")]
    rel = [Path(p).relative_to(folder).as_posix() for p in good[:3]]
    listed = folder / "new.txt"  # relative paths start at the list's folder
    listed.write_text(f"# photos of the day\n{rel[0]}\n\n  {rel[1]}  \n{good[2]}\n# the end\n")
    assert list(iter_image_paths(listed)) == good[:3]
    elsewhere = tmp_path / "lists" / "new.lst"  # --root, and the .lst extension
    elsewhere.parent.mkdir()
    elsewhere.write_text("\n".join(rel) + "\n")
    assert list(iter_image_paths(elsewhere, root=folder)) == good[:3]
    with pytest.raises(ValueError, match=r"new\.lst is read as a list of paths, one per line .*--path-format "
                                         r"\(path_format=\) does not apply"):
        list(iter_image_paths(elsewhere, path_format="{class}/{file}"))
    csv_txt = tmp_path / "labels.txt"  # a .txt with a header naming a path column is a CSV
    csv_txt.write_text("path,label\n" + "".join(f"{p},cod\n" for p in good[:2]))
    assert list(iter_image_paths(csv_txt)) == good[:2]

    model.save(tmp_path / "m.keras")
    out = tmp_path / "p.csv"
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(listed), "--out", str(out)]) == 0
    rows = _read_csv(out)
    # the lines as written (spaces around them aside), not resolved against the list's folder
    assert [r["path"] for r in rows] == [rel[0], rel[1], good[2]]
    assert all(r["label_1"] and not r["error"] for r in rows)
    assert "predicted 3 images" in capsys.readouterr().out
    # missing files keep their row and are reported as a CSV's are
    elsewhere.write_text("cod/none.png\n" + rel[0] + "\n")
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(elsewhere), "--root", str(folder),
                     "--out", str(out)]) == 0
    assert [r["error"] for r in _read_csv(out)] == ["file not found", ""]
    assert [r["path"] for r in _read_csv(out)] == ["cod/none.png", rel[0]]  # as written, missing too
    assert f"{folder / 'cod' / 'none.png'}: file not found" in capsys.readouterr().err  # where it looked
    code = cli.main(["predict", str(tmp_path / "m.keras"), str(elsewhere), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(
        f"keras-species predict: nothing was predicted: none of the 2 file(s) could be read "
        f"(line 1: {elsewhere.parent / 'cod' / 'none.png'}: file not found; ")
    assert "(if the list's paths start elsewhere than its folder, pass --root DIR)" in err
    elsewhere.write_text("# nothing yet\n\n")
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(elsewhere), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"keras-species predict: nothing was predicted: {elsewhere} "
                                       "lists no files (only blank or # lines)\n")


def test_unreadable_files_of_a_csv_or_list_are_named_with_their_lines(model, folder, tmp_path, capsys):
    good = [p for p in iter_image_paths(folder) if not p.endswith("broken.png")]
    broken = folder / "eel" / "broken.png"
    listed = tmp_path / "in.csv"  # lines: comment, header, row, blank, rows..., a row cut mid-path
    listed.write_text(f"# made by hand\npath,label\n{good[0]},cod\n\nnone.png,eel\n{good[1]},ray\n"
                      f"{broken},eel\n{good[2][:-6]}")
    out = tmp_path / "p.csv"
    with pytest.warns(UserWarning) as caught:
        result = predict(model, listed, out=out)
    assert result.count == 2 and result.skipped_lines == [5, 7, 8]
    assert re.fullmatch(
        rf"skipped 3 unreadable file\(s\) listed in {re.escape(str(listed))}: line 5: .*none\.png: "
        r"file not found; line 7: .*broken\.png: empty file \(0 bytes\); line 8: .*: file not found\. "
        r"Line 8 is the last and has no line end: the file may be cut off there.*",
        str(caught[-1].message)), str(caught[-1].message)
    assert [r["error"] for r in _read_csv(out)] == ["", "file not found", "", "empty file (0 bytes)",
                                                    "file not found"]  # the column as before
    model.save(tmp_path / "m.keras")
    capsys.readouterr()
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(listed), "--out", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"skipped 3 unreadable file(s) listed in {listed} (reason in the 'error' column):"
    assert err[1] == f"  line 5: {tmp_path / 'none.png'}: file not found"
    assert err[4].startswith("Line 8 is the last and has no line end")
    # a text list: its lines counted with the blank and # lines; an ended last line is not cut
    listed = tmp_path / "in.txt"
    listed.write_text(f"# made by hand\n{good[0]}\n\nnone.png\n")
    with pytest.warns(UserWarning, match=r"listed in .*in\.txt: line 4: .*none\.png: file not found$"):
        result = predict(model, listed)
    assert result.skipped_lines == [4] and result.cut_note == ""
    with pytest.warns(UserWarning, match=rf"skipped 1 unreadable file\(s\): {re.escape(str(broken))}"):
        result = predict(model, folder)  # no lines to name
    assert result.skipped_lines == [] and result.skipped == [(str(broken), "empty file (0 bytes)")]


def _site_csv(folder: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """``sites/in.csv`` (away from the images: read with ``--root folder``): columns ``id, site,
    path, true_label``; rows of 3 good files (one path written the Windows way), the empty
    ``eel/broken.png`` and a missing file. Returns the CSV and its path cells."""
    good = [Path(p).relative_to(folder).as_posix() for p in iter_image_paths(folder)
            if not p.endswith("broken.png")]
    cells = [good[0], "./" + good[4], good[8].replace("/", "\\"), "eel/broken.png", "cod/gone.png"]
    listed = tmp_path / "sites" / "in.csv"
    listed.parent.mkdir()
    listed.write_text("id,site,path,true_label\n" + "".join(
        f"A{i},{'north' if i % 2 else 'south'},{c},{c.replace(chr(92), '/').split('/')[-2]}\n"
        for i, c in enumerate(cells)))
    return listed, cells


def test_the_path_column_holds_each_path_as_the_input_writes_it(model, folder, tmp_path, capsys):
    listed, cells = _site_csv(folder, tmp_path)
    model.save(tmp_path / "m.keras")
    out = tmp_path / "p.csv"
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(listed), "--root", str(folder),
                     "--out", str(out)]) == 0
    rows = _read_csv(out)
    assert [r["path"] for r in rows] == cells  # the cells, not absolute paths: they join back
    assert [bool(r["error"]) for r in rows] == [False, False, False, True, True]
    err = capsys.readouterr().err  # messages name the file looked for
    assert f"line 6: {folder / 'cod' / 'gone.png'}: file not found" in err
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        result = predict(model, listed, root=folder)
    assert result.paths == cells[:3]
    assert result.skipped == [("eel/broken.png", "empty file (0 bytes)"), ("cod/gone.png", "file not found")]
    assert result.skipped_files == [str(folder / "eel" / "broken.png"), str(folder / "cod" / "gone.png")]
    # --path-format: the path as built from the row's cells (relative to the root)
    _, hy = _two_layouts(tmp_path)
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(hy), "--path-format", "{class}/{file}",
                     "--out", str(out)]) == 0
    expected = [f"{r['class']}/{r['file']}" for r in _read_csv(hy)]
    assert [r["path"] for r in _read_csv(out)] == expected and not any(r["error"] for r in _read_csv(out))
    # the batches say both: the path as written and the file read
    batch = next(iter_predictions(open_predictor(model), listed, root=folder, batch_size=8))
    assert batch.paths == cells and batch.files[1] == os.path.normpath(folder / cells[1])
    assert batch.files == list(iter_image_paths(listed, root=folder))  # sources' reading rule


def test_keep_columns_carry_a_csvs_columns_to_every_row(model, folder, tmp_path):
    listed, cells = _site_csv(folder, tmp_path)
    out = tmp_path / "p.csv"
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        result = predict(model, listed, root=folder, out=out, top_k=1, batch_size=2,
                         keep_columns=["id", "SITE", "true_label"], all_probabilities=True)
    rows = _read_csv(out)
    assert list(rows[0]) == ["path", "id", "site", "true_label", "label_1", "prob_1", "error",
                             "p_cod", "p_eel", "p_ray"]  # as the CSV spells them, after path
    source = _read_csv(listed)
    for row, src in zip(rows, source, strict=True):  # every row, the skipped ones included
        assert (row["path"], row["id"], row["site"], row["true_label"]) == (
            src["path"], src["id"], src["site"], src["true_label"])
    assert [r["id"] for r in rows if r["error"]] == ["A3", "A4"]
    assert result.columns == {"id": ["A0", "A1", "A2"], "site": ["south", "north", "south"],
                              "true_label": ["cod", "eel", "ray"]}
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):  # every column but the path's
        predict(model, listed, root=folder, out=out, keep_columns=True, keep_probabilities=False)
    assert list(_read_csv(out)[0])[:4] == ["path", "id", "site", "true_label"]
    model.save(tmp_path / "m.keras")
    for flags in (["--keep-columns", "true_label", "id"], ["--keep-all-columns"]):
        assert cli.main(["predict", str(tmp_path / "m.keras"), str(listed), "--root", str(folder),
                         "--out", str(out), *flags]) == 0
        rows = _read_csv(out)
        kept = flags[1:] or ["id", "site", "true_label"]
        assert list(rows[0])[: 1 + len(kept)] == ["path", *kept]
        assert [[r[c] for c in ["path", *kept]] for r in rows] == [
            [s[c] for c in ["path", *kept]] for s in source]
    tagger = _tiny_model("sigmoid", thresholds=[0.0, 1.0, 0.5], seed=1)  # multi-label rows too
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        predict(tagger, listed, root=folder, out=out, keep_columns=["site"])
    rows = _read_csv(out)
    assert list(rows[0])[:3] == ["path", "site", "labels"] and rows[4]["site"] == "south"


def test_keep_columns_are_checked_before_the_model_is_opened(model, folder, tmp_path, capsys,
                                                            monkeypatch):
    import keras_species.predict as predict_module

    listed, _ = _site_csv(folder, tmp_path)
    model.save(tmp_path / "m.keras")

    def no_model(*args, **kwargs):
        raise AssertionError("the model was opened")

    monkeypatch.setattr(predict_module, "open_predictor", no_model)
    out = tmp_path / "p.csv"
    with pytest.raises(ValueError, match=re.escape(
            "in.csv has no column 'station', 'date' to keep (keep_columns=[...]); its columns are "
            "['id', 'site', 'path', 'true_label']")):
        predict(model, listed, root=folder, out=out, keep_columns=["id", "station", "date"])
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(listed), "--root", str(folder),
                     "--out", str(out), "--keep-columns", "station"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-species predict: ") and "no column 'station' to keep (--keep-columns);" in err
    assert err.count("\n") == 1 and not out.exists()
    # inputs without columns refuse the option rather than ignore it
    text_list = tmp_path / "new.txt"
    text_list.write_text("cod/fish_0_0.png\n")
    for inputs, what in ((folder, "is a folder"), (text_list, "is read as a list of paths"),
                         (next(iter_image_paths(folder)), "is not a CSV"),
                         ([next(iter_image_paths(folder))], "a list of paths has no other columns")):
        with pytest.raises(ValueError, match=r"keep_columns=\[\.\.\.\] copies "
                                             rf"columns of a CSV input to the output, and .*{what}"):
            predict(model, inputs, keep_columns=["id"])
    with pytest.raises(ValueError, match=r"keep_columns=True copies .* is a folder"):
        predict(model, folder, keep_columns=True)
    for flag in ("--keep-columns", "--keep-all-columns"):
        values = ["id"] if flag == "--keep-columns" else []
        assert cli.main(["predict", str(tmp_path / "m.keras"), str(folder), flag, *values,
                         "--out", str(out)]) == 2
        assert capsys.readouterr().err == (f"keras-species predict: {flag} copies columns of a CSV "
                                           f"input to the output, and {folder} is a folder: leave it out\n")
    with pytest.raises(SystemExit):  # one or the other
        cli.main(["predict", "m.keras", str(listed), "--keep-columns", "id", "--keep-all-columns"])


def test_a_kept_column_named_as_an_output_column_is_written_as_input_name(model, folder, tmp_path,
                                                                        capsys):
    # it was refused, and only once the model was open (6 s for a large one): `predict RUN
    # split.csv --keep-columns split labels` with a multi-label model, the CSV's true labels
    # beside the predicted ones, could not be done at all
    good = [p for p in iter_image_paths(folder) if not p.endswith("broken.png")]
    listed = tmp_path / "earlier.csv"  # e.g. an earlier run's predictions, predicted again
    listed.write_text("path,Label_1,error,p_cod,note\n" + "".join(f"{p},cod,,0.5,x\n" for p in good[:2]))
    out = tmp_path / "p.csv"
    for keep, header, renamed in (
            (["note", "label_1"], ["path", "note", "input_Label_1", "label_1"], {"Label_1": "input_Label_1"}),
            (["error", "note"], ["path", "input_error", "note", "label_1"], {"error": "input_error"}),
            (["path"], ["path", "input_path", "label_1"], {"path": "input_path"}),
            (True, ["path", "input_Label_1", "input_error", "p_cod", "note", "label_1"],
             {"Label_1": "input_Label_1", "error": "input_error"})):
        with pytest.warns(UserWarning, match=re.escape(f"of {listed} ")) as caught:
            result = predict(model, listed, out=out, keep_columns=keep)
        assert result.renamed_columns == renamed
        assert "predict writes" in str(caught[0].message)
        rows = _read_csv(out)
        assert list(rows[0])[: len(header)] == header
        source = _read_csv(listed)
        for old, new in renamed.items():  # the CSV's own values, under the new name
            assert [r[new] for r in rows] == [s[old] for s in source]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no p_<class> columns: no clash, no note
        predict(model, listed, out=out, keep_columns=["p_cod", "note"])
        # no output CSV: nothing to rename; the result keeps the CSV's names
        result = predict(model, listed, keep_columns=["Label_1"])
    assert result.renamed_columns == {} and result.columns == {"Label_1": ["cod", "cod"]}
    assert [(r["p_cod"], r["note"]) for r in _read_csv(out)] == [("0.5", "x")] * 2
    with pytest.warns(UserWarning, match="kept column 'p_cod' .* is written as 'input_p_cod'"):
        predict(model, listed, out=out, keep_columns=["p_cod"], all_probabilities=True)
    assert "input_p_cod" in _read_csv(out)[0] and "p_cod" in _read_csv(out)[0]
    model.save(tmp_path / "m.keras")  # the command line: one note line
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(listed), "--keep-all-columns",
                     "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err == (f"note: kept columns 'Label_1', 'error' of {listed} are written as "
                   "'input_Label_1', 'input_error': predict writes columns of those names of its own\n")
    # a split CSV (path,labels,split) and a multi-label model; a prefixed name taken already
    # gets a number
    split_csv = tmp_path / "split.csv"
    split_csv.write_text("path,labels,split,input_labels\n"
                         + "".join(f"{p},cod;eel,test,x\n" for p in good[:2]))
    tagger = _tiny_model("sigmoid", thresholds=[0.0, 1.0, 0.5], seed=1)
    with pytest.warns(UserWarning, match="kept column 'labels' .* is written as 'input_labels_2'"):
        predict(tagger, split_csv, out=out, keep_columns=["split", "labels", "input_labels"])
    rows = _read_csv(out)
    assert list(rows[0])[:5] == ["path", "split", "input_labels_2", "input_labels", "labels"]
    assert [(r["input_labels_2"], r["input_labels"]) for r in rows] == [("cod;eel", "x")] * 2


def test_help_names_the_csv_path_columns_and_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a CSV with a path column (named path, filepath, file_path, filename, file_name, file, " \
           "image, image_path; any case) or --path-format" in text
    assert "--root DIR" in text and "--path-format FORMAT" in text


def test_a_batch_size_below_one_is_refused_naming_the_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["predict", "model.keras", "photos", "--batch-size", "0"])
    assert "argument --batch-size: '0' must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["predict", "--help"])
    assert "images per batch (default 32)" in " ".join(capsys.readouterr().out.split())


def test_image_dataset_keeps_order_without_the_autotuner(folder):
    ds = image_dataset(folder, SIZE, 4)
    assert ds.options().autotune.enabled is False and ds.options().deterministic is True
    seen = [p.decode() for paths, _, _ in ds for p in paths.numpy()]
    assert seen == list(iter_image_paths(folder))


def test_predict_folder_writes_csv_and_skips_unreadable(model, folder, tmp_path):
    out = tmp_path / "pred.csv"
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        result = predict(model, folder, out=out, top_k=2, batch_size=5)
    good = [p for p in iter_image_paths(folder) if not p.endswith("broken.png")]
    assert result.count == len(result) == 12 and result.paths == good
    assert result.skipped == [(str(folder / "eel" / "broken.png"), "empty file (0 bytes)")]
    np.testing.assert_allclose(result.probabilities, _expected(model, good), atol=1e-5)
    rows = _read_csv(out)
    assert list(rows[0]) == ["path", "label_1", "prob_1", "label_2", "prob_2", "error"]
    assert [r["path"] for r in rows] == list(iter_image_paths(folder))  # input order, bad included
    bad = [r for r in rows if r["error"]]
    assert len(bad) == 1 and bad[0]["label_1"] == "" and "empty" in bad[0]["error"]
    for row, probs in zip([r for r in rows if not r["error"]], result.probabilities):
        order = np.argsort(-probs)
        assert [row["label_1"], row["label_2"]] == [NAMES[order[0]], NAMES[order[1]]]
        assert float(row["prob_1"]) == pytest.approx(probs[order[0]], abs=1e-5)
        assert float(row["prob_1"]) >= float(row["prob_2"])
    assert result.labels() == [NAMES[i] for i in result.probabilities.argmax(1)]
    assert result.top_k(1)[0][0][0] == result.labels()[0]


def test_settings_that_would_not_apply_are_refused(model, folder, tmp_path, capsys):
    with pytest.raises(ValueError, match=re.escape(
            "thresholds=0.5: thresholds apply to multi-label (sigmoid) models, and this model is "
            "single-label: leave thresholds out (its CSV lists the top-k classes)")):
        predict(model, folder, thresholds=0.5)  # softmax model: it would be ignored
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=re.escape(f"top_k={k!r}: must be a whole number >= 1")):
            predict(model, folder, top_k=k)
    model.save(tmp_path / "m.keras")  # the command line names the flags as given
    for options, expected in (
            (["--thresholds", "0.5", "0.6"], "--thresholds 0.5 0.6: thresholds apply to multi-label "
             "(sigmoid) models, and this model is single-label: leave --thresholds out (its CSV lists "
             "the top-k classes)"),):
        assert cli.main(["predict", str(tmp_path / "m.keras"), str(folder), *options,
                         "--out", str(tmp_path / "p.csv")]) == 2
        assert capsys.readouterr().err == f"keras-species predict: {expected}\n"
    with pytest.raises(SystemExit) as stop:  # a flag error, refused before the model loads (stop 29)
        cli.main(["predict", str(tmp_path / "m.keras"), str(folder), "--top-k", "0", "--out", str(tmp_path / "p.csv")])
    assert stop.value.code == 2
    assert capsys.readouterr().err == "keras-species predict: error: argument --top-k: '0' must be at least 1; see --help\n"
    assert not (tmp_path / "p.csv").exists()
    out = tmp_path / "all.csv"
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        predict(model, folder, out=out, top_k=np.int64(50))  # more than the classes: all of them
    assert list(_read_csv(out)[0])[-3:] == [f"label_{len(NAMES)}", f"prob_{len(NAMES)}", "error"]


def test_inputs_without_images_are_named_before_the_dataset_runs(model, tmp_path):
    bad = tmp_path / "in.csv"
    bad.write_text("foo,bar\n1,2\n")
    with pytest.raises(ValueError, match=r"in.csv: no path column found \(looked for path, filepath.*"
                       r"its columns are \['foo', 'bar'\].*--path-format"):
        predict(model, bad)  # a ValueError of ours (one line on the command line), not TensorFlow's
    (tmp_path / "empty").mkdir()
    with pytest.warns(UserWarning, match="no images found in .*empty: nothing to predict"):
        assert predict(model, tmp_path / "empty").count == 0


def test_an_input_csv_that_is_not_utf8_is_one_line_naming_it(model, folder, tmp_path, capsys):
    listed = tmp_path / "in.csv"
    listed.write_bytes(b"path\n" + os.fsencode(next(iter_image_paths(folder))) + b"\nphoto_\xe9t\xe9.png\n")
    with pytest.raises(ValueError, match=r"in\.csv is not UTF-8 text \(byte 0xe9 on line 3\): re-save it"):
        list(iter_image_paths(listed))
    model.save(tmp_path / "m.keras")
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(listed), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"keras-species predict: {listed} is not UTF-8 text (byte 0xe9 on line 3)")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p.csv").exists()


def test_an_out_that_is_a_folder_fails_before_predicting(model, folder, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    with pytest.raises(IsADirectoryError, match=r"results is a folder: give a file name"):
        predict(model, folder, out=out)  # os.replace would refuse it after every prediction
    model.save(tmp_path / "m.keras")  # the command line names the flag
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(folder), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"keras-species predict: {out} (--out) is a folder: give a file name")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != folder.name) == ["m.keras", "results"]


def test_model_paths_run_folder_and_saved_model_agree(model, folder, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "best.keras")
    sm = export_model(model, tmp_path / "sm", format="saved_model")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        by_model = predict(model, folder)
        by_file = predict(run / "best.keras", folder)
        by_run = predict(run, folder)
        by_sm = predict(sm, folder, all_probabilities=True, out=tmp_path / "sm.csv")
    for other in (by_file, by_run, by_sm):
        assert other.paths == by_model.paths and other.class_names == NAMES
        assert np.abs(other.probabilities - by_model.probabilities).max() <= 1e-5
    rows = _read_csv(tmp_path / "sm.csv")
    assert [k for k in rows[0] if k.startswith("p_")] == ["p_cod", "p_eel", "p_ray"]


def test_multilabel_uses_saved_thresholds_and_override(tmp_path):
    root = write_image_folder(tmp_path / "ml", per_class=2)
    model = _tiny_model("sigmoid", thresholds=[0.0, 1.0, 0.5], seed=1)
    result = predict(model, root, out=tmp_path / "ml.csv")
    assert result.multilabel and result.thresholds.tolist() == [0.0, 1.0, 0.5]
    rows = _read_csv(tmp_path / "ml.csv")
    assert list(rows[0]) == ["path", "labels", "probabilities", "top_label", "top_probability", "error"]
    for row, probs, labels in zip(rows, result.probabilities, result.labels()):
        expect = [NAMES[j] for j in np.argsort(-probs) if probs[j] >= [0.0, 1.0, 0.5][j]]
        assert row["labels"].split(";") == expect and sorted(labels) == sorted(expect)
        assert "cod" in labels and "eel" not in labels
        assert len(row["probabilities"].split(";")) == len(expect)
    lowered = predict(model, root, thresholds=0.0)
    assert all(set(lab) == set(NAMES) for lab in lowered.labels())


def test_multilabel_refuses_top_k_rather_than_ignore_it(model, tmp_path, capsys):
    root = write_image_folder(tmp_path / "ml", per_class=1)
    tagger = _tiny_model("sigmoid", thresholds=[0.0, 1.0, 0.5], seed=1)
    with pytest.raises(ValueError, match=r"top_k=2: top-k applies to single-label .* this model is "
                                         r"multi-label: .* leave top_k out \(thresholds changes the "
                                         r"thresholds; all_probabilities=True adds"):
        predict(tagger, root, top_k=2, out=tmp_path / "ml.csv")
    assert not (tmp_path / "ml.csv").exists()
    tagger.save(tmp_path / "tagger.keras")
    code = cli.main(["predict", str(tmp_path / "tagger.keras"), str(root), "--top-k", "3",
                     "--out", str(tmp_path / "ml.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("keras-species predict: --top-k 3: top-k applies to single-label")
    assert err.endswith("so leave --top-k out (--thresholds changes the thresholds; --all-probabilities "
                        "adds every class's probability)\n")
    assert not (tmp_path / "ml.csv").exists()
    assert cli.main(["predict", str(tmp_path / "tagger.keras"), str(root), "--out", str(tmp_path / "ml.csv")]) == 0
    assert list(_read_csv(tmp_path / "ml.csv")[0])[:2] == ["path", "labels"]
    predict(model, root, out=tmp_path / "single.csv")  # single-label: top-k defaults to 5 (all 3 here)
    assert list(_read_csv(tmp_path / "single.csv")[0])[-3:] == ["label_3", "prob_3", "error"]


def test_a_model_argument_that_is_no_model_is_named_in_one_line(model, folder, tmp_path, capsys):
    sm = export_model(model, tmp_path / "sm", format="saved_model")
    tflite = export_model(model, tmp_path / "fish.tflite", format="tflite")
    photo = next(iter(iter_image_paths(folder)))
    accepted = "pass a .keras file, a SavedModel folder written by keras-species export, or a run folder"
    cases = {
        tflite: "is a TFLite model, which keras-species does not read: pass the .keras file or the run "
                "folder it was exported from, or a SavedModel folder written by keras-species export",
        tmp_path / "fish.labels.json": f"is a .json file, not a Keras model: {accepted}",
        photo: f"is an image, not a model: {accepted}",
        sm / "saved_model.pb": f"is a file inside the SavedModel folder {sm}: pass the SavedModel folder {sm} itself",
    }
    for path, expected in cases.items():
        with pytest.raises(ValueError, match=re.escape(f"model {path} {expected}")):
            predict(path, folder)
        capsys.readouterr()
        assert cli.main(["predict", str(path), str(folder), "--out", str(tmp_path / "p.csv")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"keras-species predict: model {path} ")
        assert expected in err and err.count("\n") == 1, err  # one line: no traceback
    assert not (tmp_path / "p.csv").exists()


def test_a_folder_holding_only_a_tflite_model_names_it_and_what_to_pass(folder, tmp_path, capsys):
    """predict runs .keras files and SavedModels, not TFLite: a folder export wrote a .tflite
    into is named with that file, not as "neither a SavedModel nor a run folder"."""
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "fish.tflite").write_bytes(b"TFL3")  # never read: the names decide
    (exports / "fish.labels.json").write_text("{}")
    (exports / "labels.json").write_text("{}")
    expected = (f"{exports} holds no .keras file or SavedModel, only the TFLite model fish.tflite, which "
                "keras-species does not read: pass the .keras file or the run folder it was exported "
                "from, or a SavedModel folder written by keras-species export (--out FOLDER)")
    with pytest.raises(ValueError, match=re.escape(expected)):
        predict(exports, folder)
    capsys.readouterr()
    assert cli.main(["predict", str(exports), str(folder), "--out", str(tmp_path / "p.csv")]) == 2
    assert capsys.readouterr().err == f"keras-species predict: {expected}\n"
    (exports / "fish_int8.tflite").write_bytes(b"TFL3")
    with pytest.raises(ValueError, match=r"only the TFLite models fish.tflite, fish_int8.tflite, which"):
        predict(exports, folder)
    (exports / "sm").mkdir()  # a SavedModel exported beside them is the one to pass
    (exports / "sm" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ValueError, match=r"neither a SavedModel folder .* It holds sm: pass one of them"):
        predict(exports, folder)
    assert not (tmp_path / "p.csv").exists()


def test_a_folder_of_run_folders_lists_them_with_the_command(folder, tmp_path, capsys, monkeypatch):
    """MODEL given as runs/<recipe> (or runs): its run folders are named, newest first, with the
    command to run on one; nothing is read (the files here are no models)."""
    recipe = tmp_path / "runs" / "quickstart"
    for name, age in (("old", 30), ("new one", 50), ("middle", 40), ("older", 20), ("oldest", 10)):
        run = recipe / name
        run.mkdir(parents=True)
        (run / "config.json").write_text('{"recipe": "quickstart"}')
        (run / "best.keras").write_bytes(b"never read")
        os.utime(run / "best.keras", (1_700_000_000 + age, 1_700_000_000 + age))
    (recipe / "failed").mkdir()  # a run without a model is not offered
    (recipe / "failed" / "config.json").write_text('{"recipe": "quickstart"}')
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: pytest.fail("a model was read"))
    quoted = f"'{recipe / 'new one'}'"  # a name with a space, quoted for a shell
    listing = ("(those with a best.keras, newest first: new one, middle, old and 2 more; "
               f"keras-species runs {recipe} lists the runs)")
    expected = (f"{recipe} holds run folders, not a model: pass one of them (its best.keras is read), "
                f"e.g. keras-species predict {quoted} INPUT ... {listing}")
    out = tmp_path / "p.csv"
    assert cli.main(["predict", str(recipe), str(tmp_path / "odd"), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"keras-species predict: {expected}\n"
    with pytest.raises(ValueError) as caught:  # in Python: the folder to pass, not a command
        predict(recipe, folder)
    assert str(caught.value) == (f"{recipe} holds run folders, not a model: pass one of them (its "
                                 f"best.keras is read), e.g. {recipe / 'new one'} {listing}")
    assert cli.main(["export", str(recipe), "--out", str(tmp_path / "m.keras")]) == 2
    assert f"e.g. keras-species export {quoted} --out OUT ... (" in capsys.readouterr().err
    runs = recipe.parent  # runs/: the runs of every recipe, one level deeper
    assert cli.main(["predict", str(runs), str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"keras-species predict: {runs} holds run folders, not a model: ")
    assert "newest first: quickstart/new one, quickstart/middle, quickstart/old and 2 more;" in err
    for name in ("old", "new one", "middle", "older", "oldest"):
        (recipe / name / "best.keras").unlink()
    assert cli.main(["predict", str(recipe), str(folder), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"keras-species predict: {recipe} holds run folders (failed, middle, new one and 3 more), not a "
        f"model, and none of them a best.keras (not trained yet, or failed?): keras-species runs {recipe} "
        "shows their status\n")
    assert not out.exists()


def test_a_root_that_is_no_folder_is_refused_before_the_model_is_opened(model, folder, tmp_path, capsys,
                                                                       monkeypatch):
    import keras_species.predict as predict_module

    good = [p for p in iter_image_paths(folder) if not p.endswith("broken.png")]
    listed = tmp_path / "list.csv"
    listed.write_text("path\n" + "".join(f"{Path(p).relative_to(folder)}\n" for p in good[:2]))
    text_list = tmp_path / "list.txt"
    text_list.write_text("".join(f"{Path(p).relative_to(folder)}\n" for p in good[:2]))

    def no_model(*args, **kwargs):
        raise AssertionError("the model was opened")

    monkeypatch.setattr(predict_module, "open_predictor", no_model)
    nowhere, out = tmp_path / "nowhere", tmp_path / "p.csv"
    for inputs, what in ((listed, "a CSV"), (text_list, "a list")):
        expected = (f"does not exist: give the folder that the relative paths of {what} start from, "
                    "or leave {} out (they start at its folder, or its images/ subfolder)")
        assert cli.main(["predict", "m.keras", str(inputs), "--root", str(nowhere), "--out", str(out)]) == 2
        assert capsys.readouterr().err == (f"keras-species predict: --root {nowhere} "
                                           f"{expected.format('--root')}\n")
        with pytest.raises(FileNotFoundError) as caught:
            predict(model, inputs, root=nowhere, out=out)
        assert str(caught.value) == f"root='{nowhere}' {expected.format('root')}"
        with pytest.raises(FileNotFoundError, match=r"root='.*nowhere' does not exist"):
            next(iter_image_paths(inputs, root=nowhere))
    with pytest.raises(NotADirectoryError, match=r"root='.*list.txt' is a file, not a folder: give the folder"):
        predict(model, listed, root=text_list)
    assert cli.main(["predict", "m.keras", str(folder), "--root", str(tmp_path), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"keras-species predict: {folder} is not a CSV, to which --root does not apply: leave it out "
        "(--root says where a CSV's or list's relative paths start)\n")
    assert not out.exists()
    monkeypatch.undo()
    assert predict(model, listed, root=folder).count == 2  # an existing root is taken


def test_tta_is_the_mean_over_transforms(model, tmp_path):
    root = write_image_folder(tmp_path / "t", per_class=2)
    paths = list(iter_image_paths(root))
    result = predict(model, root, tta="flips")
    base = np.stack([
        np.floor(resize_image(tf.constant(images_mod.read_image(p)), SIZE).numpy() + 0.5)
        for p in paths
    ])
    expected = predict_tta(model, base, transforms="flips")
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5)
    plain = predict(model, root)
    assert np.abs(plain.probabilities - expected).max() > 1e-6  # TTA changed something
    sm = export_model(model, tmp_path / "sm", format="saved_model")
    np.testing.assert_allclose(predict(sm, root, tta="flips").probabilities, expected, atol=1e-5)


def test_streams_lazily_with_bounded_read_ahead(model, tmp_path, monkeypatch):
    # the read-ahead follows the usable cores (one call each, ceil(calls / batch) batches
    # buffered): fixed at 2 here, as on the 2-core machines, whatever host this runs on
    monkeypatch.setattr(cpu_budget, "usable_cores", lambda: 2)
    monkeypatch.setattr(cpu_budget, "affinity_cores", lambda: 2)
    root = tmp_path / "many"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(300):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(root / f"{i:03d}.png")
    reads: list[str] = []
    real = images_mod.read_image

    def counting(path, **kw):
        reads.append(path)
        return real(path, **kw)

    monkeypatch.setattr(images_mod, "read_image", counting)
    predictor = open_predictor(model)
    batches = iter_predictions(predictor, root, batch_size=8)
    assert reads == []  # a generator: nothing read before iteration
    first = next(batches)
    assert len(first.paths) == 8
    assert len(reads) < 120, len(reads)  # read-ahead is a few batches, not the folder
    total = 8 + sum(len(b.paths) for b in batches)
    assert total == 300 and len(reads) == 300
    result = predict(model, root, keep_probabilities=False, out=tmp_path / "many.csv",
                     batch_size=64)
    assert result.probabilities is None and result.count == 300
    assert len(_read_csv(tmp_path / "many.csv")) == 300
    with pytest.raises(ValueError, match="not kept"):
        result.top_k()


def test_a_predictor_opened_once_serves_many_calls(model, folder, tmp_path):
    # loading a SavedModel and tracing a Keras model happen in open_predictor, once
    model.export(str(tmp_path / "plain_sm"), format="tf_saved_model", verbose=False)
    for target, labels in ((model, None), (tmp_path / "plain_sm", NAMES)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            direct = predict(target, folder, labels=labels)
            predictor = open_predictor(target, labels=labels)
            first, second = predict(predictor, folder), predict(predictor, folder, top_k=2)
        assert first.paths == direct.paths and first.class_names == direct.class_names == NAMES
        np.testing.assert_allclose(first.probabilities, direct.probabilities, atol=1e-6)
        np.testing.assert_array_equal(second.probabilities, first.probabilities)
        for given in ({"labels": NAMES}, {"image_size": SIZE}):
            with pytest.raises(ValueError, match=f"{next(iter(given))} is read when a model is opened"):
                predict(predictor, folder, **given)


@pytest.mark.parametrize("chunk", [1, 4, 13, 64])
def test_paths_drawn_in_chunks_keep_one_row_per_file_in_order(folder, monkeypatch, chunk):
    import keras_species.predict as predict_module

    monkeypatch.setattr(predict_module, "PATH_CHUNK", chunk)
    files = list(iter_image_paths(folder))
    assert len(files) == 13  # 12 images and an empty file: chunk boundaries fall inside
    rows = [(p.decode(), e.decode()) for b in image_dataset(folder, SIZE, batch_size=5)
            for p, e in zip(b[0].numpy(), b[2].numpy())]
    assert [p for p, _ in rows] == files
    assert [p for p, e in rows if e] == [str(folder / "eel" / "broken.png")]


def test_image_dataset_reads_one_image_per_usable_core_at_a_time(folder, monkeypatch):
    # a count, not AUTOTUNE: for AUTOTUNE the fused map-and-batch buffers batches by the cores
    # TensorFlow sees, 16 of them on a big host under a small CPU quota
    for cores in (1, 3):
        monkeypatch.setattr(cpu_budget, "usable_cores", lambda c=cores: c)
        ds = image_dataset(folder, (SIZE, 20), batch_size=4)
        graph = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())
        nodes = {n.name: n for n in graph.node}
        calls = [int(tf.make_ndarray(nodes[n.input[-1]].attr["value"].tensor))
                 for n in graph.node if n.op == "ParallelMapDatasetV2"]
        assert calls == [cores]


def test_image_dataset_yields_uint8_batches(folder):
    paths, imgs, errors = next(iter(image_dataset(folder, (SIZE, 20), batch_size=4)))
    assert imgs.dtype == tf.uint8 and tuple(imgs.shape) == (4, SIZE, 20, 3)
    assert paths.shape == (4,) and errors.shape == (4,)


def test_model_without_label_map(tmp_path, folder):
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    plain = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="label")(x))
    with pytest.raises(LabelMapError, match="labels"):
        predict(plain, folder)
    plain.save(tmp_path / "plain.keras")
    LabelMap(["a", "b", "c"]).write_json(tmp_path / "labels.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = predict(tmp_path / "plain.keras", folder)
        assert result.class_names == ["a", "b", "c"]
        assert predict(plain, folder, labels=["x", "y", "z"]).class_names == ["x", "y", "z"]


def test_plain_keras_saved_model_with_labels(model, folder, tmp_path, capsys):
    model.export(str(tmp_path / "plain_sm"), format="tf_saved_model", verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(LabelMapError, match=re.escape(
                "carries no label map: pass labels= (class names or a labels.json), or put a "
                "labels.json next to the model")):
            predict(tmp_path / "plain_sm", folder)
        assert cli.main(["predict", str(tmp_path / "plain_sm"), str(folder),
                         "--out", str(tmp_path / "p.csv")]) == 2
        assert capsys.readouterr().err.endswith(
            "carries no label map: pass --labels LABELS_JSON (a labels.json), or put a labels.json "
            "next to the model\n")
        result = predict(tmp_path / "plain_sm", folder, labels=NAMES)
        expected = predict(model, folder)
    assert result.class_names == NAMES
    assert np.abs(result.probabilities - expected.probabilities).max() <= 1e-5


def test_labels_must_match_the_outputs_and_never_replace_a_models_own(model, folder, tmp_path):
    # stop 30: 3 names for a 6-output model crashed after the model ran (IndexError), 8 wrote
    # rows under a longer header, and --labels renamed a model's own classes (or was ignored by
    # an exported SavedModel) without a word
    from keras_species.export import export_model

    inp = keras.Input((SIZE, SIZE, 3))
    plain = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp)))
    for names in (["a", "b"], ["a", "b", "c", "d"]):
        with pytest.raises(LabelMapError, match=rf"has 3 outputs but the label map {len(names)} class names"):
            predict(plain, folder, labels=names)
    with pytest.raises(LabelMapError, match=r"carries its own label map \(3 classes: cod, eel, ray\), "
                                            r"which labels would replace without a word"):
        predict(model, folder, labels=["x", "y", "z"])
    exported = export_model(model, tmp_path / "sm", format="saved_model")
    with pytest.raises(LabelMapError, match="carries its own label map"):
        predict(exported, folder, labels=["x", "y", "z"])
    model.export(str(tmp_path / "plain_sm"), format="tf_saved_model", verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(LabelMapError, match="has 3 outputs but the label map 2 class names"):
            predict(tmp_path / "plain_sm", folder, labels=["a", "b"])
    plain.save(tmp_path / "plain.keras")
    LabelMap(["a", "b"]).write_json(tmp_path / "labels.json")  # a stale labels.json beside it
    with pytest.raises(LabelMapError, match="has 3 outputs but the label map 2 class names"):
        predict(tmp_path / "plain.keras", folder)


def test_a_model_trained_with_pad_or_crop_is_predicted_with_it(model, tmp_path, capsys):
    # stop 30: make_dataset and build_datasets take resize="pad"|"crop", and predict always
    # stretched: such a model saw other pixels at prediction than in training
    import tensorflow as tf

    from keras_species.data.pipeline import resize_image, to_uint8

    wide = (np.random.default_rng(0).uniform(0, 255, (12, 40, 3))).astype(np.uint8)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    for mode in ("stretch", "pad", "crop"):
        x = to_uint8(resize_image(tf.constant(wide), SIZE, mode)).numpy().astype(np.float32)[None]
        expected = np.asarray(model(x, training=False))
        got = predict(model, [str(tmp_path / "wide.png")], resize=mode).probabilities
        np.testing.assert_allclose(got, expected, atol=1e-6)
    pad, stretch = (predict(model, [str(tmp_path / "wide.png")], resize=m).probabilities for m in ("pad", "stretch"))
    assert np.abs(pad - stretch).max() > 1e-4  # the mode matters for this image
    with pytest.raises(ValueError, match="resize='fit': give one of stretch, pad, crop"):
        predict(model, [str(tmp_path / "wide.png")], resize="fit")
    model.save(tmp_path / "m.keras")
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(tmp_path / "wide.png"), "--resize", "pad",
                     "--out", str(tmp_path / "p.csv"), "--all-probabilities"]) == 0
    row = _read_csv(tmp_path / "p.csv")[0]
    np.testing.assert_allclose([float(row[f"p_{c}"]) for c in NAMES], pad[0], atol=1e-5)


def test_an_out_name_of_another_format_is_refused_before_the_model_is_read(model, folder, tmp_path, capsys):
    # stop 30: `--out p.json` wrote CSV text into p.json and exited 0
    with pytest.raises(ValueError, match=r"out='.*p\.json': predict writes a CSV \(one row per "
                                         r"image\), not a \.json file: give a name ending in \.csv"):
        predict(model, folder, out=tmp_path / "p.json")
    model.save(tmp_path / "m.keras")
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(folder), "--out", str(tmp_path / "p.json")]) == 2
    assert "--out " in capsys.readouterr().err and not (tmp_path / "p.json").exists()
    for name in ("p.csv", "p", "preds.v2", "2024.05.01"):  # dotted names without a format suffix
        predict(model, folder, out=tmp_path / name)
    for name in ("p.TSV", "p.csv.gz", "p.zip"):  # comma-separated, and not compressed
        with pytest.raises(ValueError, match=r"not a \.(tsv|gz|zip) file"):
            predict(model, folder, out=tmp_path / name)


def test_cli(model, folder, tmp_path, capsys, monkeypatch):
    model.save(tmp_path / "m.keras")
    out = tmp_path / "cli.csv"
    notes = folder / "notes.txt"
    notes.write_text("caught at dawn")  # not an image by its extension: left out, and said so
    code = cli.main(["predict", str(tmp_path / "m.keras"), str(folder), "--out", str(out),
                     "--top-k", "3", "--batch-size", "4", "--tta", "flips"])
    assert code == 0
    rows = _read_csv(out)
    assert len(rows) == 13 and "label_3" in rows[0]
    err = capsys.readouterr().err
    assert "skipped 1 unreadable" in err and "broken.png" in err
    assert f"left out 1 file(s) whose extension is not an image extension: {notes}" in err
    notes.unlink()
    # failures leave the default predictions.csv of an earlier run as it was, and no partial file
    monkeypatch.chdir(tmp_path)
    (tmp_path / "predictions.csv").write_text("earlier\n")
    assert cli.main(["predict", str(tmp_path / "nope.keras"), str(folder)]) == 2
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(folder), "--tta", "spin"]) == 2
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(tmp_path / "none")]) == 2
    assert (tmp_path / "predictions.csv").read_text() == "earlier\n"
    assert not list(tmp_path.glob(".predictions.tmp-*"))  # no temporary file left either
    (tmp_path / "broken.keras").write_bytes(b"")  # named with what is wrong, not Keras' "not found"
    capsys.readouterr()
    assert cli.main(["predict", str(tmp_path / "broken.keras"), str(folder)]) == 2
    assert "broken.keras is empty (0 bytes)" in capsys.readouterr().err
    if Path("/proc/self").is_dir():  # a folder where no file can be made (even by root)
        capsys.readouterr()
        assert cli.main(["predict", str(tmp_path / "m.keras"), str(folder), "--out", "/proc/p.csv"]) == 2
        err = capsys.readouterr().err  # named as atomic names every output, not its temporary
        assert "/proc/p.csv (--out) cannot be written (" in err and ".tmp-" not in err


def test_cli_keeps_the_traceback_of_an_error_from_inside_a_library(model, folder, tmp_path, monkeypatch):
    import keras_species.predict as predict_module

    model.save(tmp_path / "m.keras")

    def numpy_fails(*args, **kwargs):
        return np.reshape(np.zeros(3), (2, 2))  # a ValueError raised in NumPy, not by keras-species

    monkeypatch.setattr(predict_module, "predict", numpy_fails)
    with pytest.raises(ValueError, match="reshape"):
        cli.main(["predict", str(tmp_path / "m.keras"), str(folder), "--out", str(tmp_path / "p.csv")])


def test_the_command_line_names_an_oversized_image_without_pils_raw_warning(model, folder, tmp_path, capsys):
    # 95 megapixels: over PIL's default limit (about 89), under twice it, where PIL only warns.
    # Before, the command printed PIL's raw DecompressionBombWarning before its own report.
    import warnings

    from PIL import Image

    write_png_header(folder / "cod" / "huge.png", 10_000, 9_500)
    model.save(tmp_path / "m.keras")
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        code = cli.main(["predict", str(tmp_path / "m.keras"), str(folder), "--out", str(tmp_path / "p.csv")])
    assert code == 0
    assert not [w for w in record if issubclass(w.category, Image.DecompressionBombWarning)]
    reported = [line for line in capsys.readouterr().err.splitlines() if "huge.png" in line]
    assert len(reported) == 1 and "limit" in reported[0], reported


def test_predict_in_python_names_an_oversized_image_without_pils_raw_warning(model, folder):
    # before, predict() let PIL's DecompressionBombWarning through from the reading threads
    from PIL import Image

    write_png_header(folder / "cod" / "huge.png", 10_000, 9_500)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = predict(model, folder)
    assert not [w for w in record if issubclass(w.category, Image.DecompressionBombWarning)]
    reasons = [reason for path, reason in result.skipped if path.endswith("huge.png")]
    assert len(reasons) == 1 and "over the decompression-bomb limit" in reasons[0], reasons


def test_a_missing_input_and_other_cheap_inputs_are_named_before_the_model_is_opened(
        model, folder, tmp_path, capsys, monkeypatch):
    """INPUT that does not exist was named only once the model was loaded (seconds for a large
    one); so were a labels.json that cannot be read, an out that is a folder and batch_size=0."""
    import keras_species.predict as predict_module

    model_file = tmp_path / "m.keras"
    model.save(model_file)
    monkeypatch.setattr(predict_module, "open_predictor",
                        lambda *a, **k: pytest.fail("the model was opened"))
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: pytest.fail("the model was read"))
    missing, out = tmp_path / "nowhere", tmp_path / "p.csv"
    expected = f"input {missing} does not exist: pass an image, a folder, a CSV or a .txt list of paths"
    assert cli.main(["predict", str(model_file), str(missing), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"keras-species predict: {expected}\n"
    for given in (model_file, model):
        with pytest.raises(FileNotFoundError) as caught:
            predict(given, missing, out=out)
        assert str(caught.value) == expected
    with pytest.raises(FileNotFoundError, match=re.escape(expected)):  # also with --keep-columns
        predict(model_file, missing, keep_columns=["id"])
    assert cli.main(["predict", str(tmp_path / "none.keras"), str(missing), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(  # the model, named first, is checked first
        f"keras-species predict: model {tmp_path / 'none.keras'} does not exist: pass ")
    nolabels = tmp_path / "nolabels.json"
    labels_fix = ("does not exist: give the labels.json that holds the model's class names, or "
                  "leave {} out for a model that carries its label map")
    with pytest.raises(ValueError) as caught:
        predict(model_file, folder, labels=nolabels)
    assert str(caught.value) == f"labels='{nolabels}' {labels_fix.format('labels')}"
    assert cli.main(["predict", str(model_file), str(folder), "--labels", str(nolabels),
                     "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"keras-species predict: --labels {nolabels} "
                                       f"{labels_fix.format('--labels')}\n")
    (tmp_path / "cut.json").write_text('{"class_names": ["cod", "e')
    with pytest.raises(LabelMapError, match=r"cut.json cannot be read as a label map"):
        predict(model_file, folder, labels=tmp_path / "cut.json")
    results = tmp_path / "results"
    results.mkdir()
    with pytest.raises(IsADirectoryError, match=r"results is a folder: give a file name"):
        predict(model_file, folder, out=results)
    with pytest.raises(ValueError, match=re.escape("batch_size=0: must be a whole number >= 1")):
        predict(model_file, folder, batch_size=0)
    assert not out.exists()


def test_a_csv_naming_a_file_in_another_unicode_form_predicts_it(model, tmp_path):
    # macOS writes names in NFD; a CSV typed elsewhere names them in NFC: "file not found" before
    import unicodedata

    nfc, nfd = (unicodedata.normalize(form, "Gadus_morhua_é.png") for form in ("NFC", "NFD"))
    Image.new("RGB", (20, 16), (200, 30, 40)).save(tmp_path / nfd)
    (tmp_path / "list.csv").write_text(f"path,site\n{nfc},Ålesund\n", encoding="utf-8")
    (tmp_path / "list.txt").write_text(f"{nfc}\n", encoding="utf-8")
    for name in ("list.csv", "list.txt"):
        result = predict(model, tmp_path / name)
        assert result.count == 1 and not result.skipped
        assert result.paths == [nfc]  # as the input writes it, to join back to it


def test_the_image_size_flag_takes_one_or_two_values(tmp_path, capsys):
    # a third value was dropped without a word
    for command in ("predict", "export"):
        args = (["m.keras", "photos"] if command == "predict" else ["m.keras", "--out", "m.tflite"])
        with pytest.raises(SystemExit):
            cli.main([command, *args, "--image-size", "32", "24", "16"])
        assert ("argument --image-size: give H, or H W (height and width in pixels), not 3 values"
                in capsys.readouterr().err)
        with pytest.raises(SystemExit):
            cli.main([command, *args, "--image-size", "0"])
        assert "argument --image-size" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["export", "m.keras", "--out", "m.tflite", "--representative-count", "0"])
    assert "argument --representative-count" in capsys.readouterr().err


def test_a_model_and_input_given_the_wrong_way_round_are_named(model, folder, tmp_path, capsys):
    # before: "photos is neither a SavedModel folder ... nor a run folder", and nothing more
    model_file = tmp_path / "m.keras"
    model.save(model_file)
    out = tmp_path / "p.csv"
    assert cli.main(["predict", str(folder), str(model_file), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"keras-species predict: {folder} is neither a SavedModel folder (no saved_model.pb) nor a "
        f"run folder (no best.keras) nor a feature_classifiers run folder (no classifier.joblib). "
        f"The input {model_file} is a model: the model comes first "
        "(keras-species predict MODEL INPUT).\n")
    photo = next(iter_image_paths(folder))
    run = tmp_path / "run"  # a run folder: its best.keras
    run.mkdir()
    model.save(run / "best.keras")
    with pytest.raises(ValueError, match=re.escape(
            f"model {photo} is an image, not a model: pass a .keras file, a SavedModel folder written "
            f"by keras-species export, or a run folder (its best.keras, or a feature_classifiers "
            f"run's classifier.joblib). The input {run} is a "
            "model: the model comes first (predict(model_or_path, inputs)).")):
        predict(photo, run)
    with pytest.raises(ValueError) as caught:  # an input that is no model: no such note
        predict(photo, folder)
    assert "The input" not in str(caught.value)
    assert not out.exists()


def test_thresholds_out_of_range_are_named_as_given(tmp_path, capsys):
    # before: "thresholds must lie in [0, 1]; got 1.5", neither --thresholds nor thresholds= named
    root = write_image_folder(tmp_path / "ml", per_class=1)
    tagger = _tiny_model("sigmoid", thresholds=[0.0, 1.0, 0.5], seed=1)
    tagger.save(tmp_path / "tagger.keras")
    out = tmp_path / "ml.csv"
    code = cli.main(["predict", str(tmp_path / "tagger.keras"), str(root), "--thresholds", "1.5",
                     "--out", str(out)])
    assert code == 2
    assert capsys.readouterr().err == (
        "keras-species predict: --thresholds 1.5: thresholds must lie in [0, 1]; got 1.5\n")
    assert not out.exists()
    with pytest.raises(ValueError, match=re.escape(
            "thresholds=[0.5, 0.5]: 2 thresholds for 3 classes; pass one per class or one number")):
        predict(tagger, root, thresholds=[0.5, 0.5])


def _linked_folder(tmp_path: Path) -> Path:
    """Class folders as a new user's photo folder holds them: ``eel`` a link to a folder
    elsewhere, a link looping back (``ray/again`` -> ``ray``), a hidden ``.thumbnails`` folder,
    a ``__MACOSX`` folder and ``Thumbs.db``/``.DS_Store`` files."""
    root = write_image_folder(tmp_path / "photos", classes=("cod", "ray"), per_class=2)
    elsewhere = write_image_folder(tmp_path / "elsewhere", classes=("eel",), per_class=2)
    (root / "eel").symlink_to(elsewhere / "eel", target_is_directory=True)
    (root / "ray" / "again").symlink_to(root / "ray", target_is_directory=True)
    for hidden in (".thumbnails", "__MACOSX"):
        (root / "cod" / hidden).mkdir()
        Image.new("RGB", (8, 8)).save(root / "cod" / hidden / "small.png")
    (root / "cod" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "cod" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return root


def test_a_folder_is_walked_by_the_folder_readers_rules(tmp_path):
    # before: a linked class folder was not followed (predict: "no images found" where audit,
    # split and training read its images), a hidden folder's images were predicted, and
    # Thumbs.db was listed as a file left out for its extension
    root = _linked_folder(tmp_path)
    paths = list(iter_image_paths(root))
    names = [str(Path(p).relative_to(root)) for p in paths]
    assert names == ["cod/fish_0_0.png", "cod/fish_1_1.png", "eel/fish_0_0.png", "eel/fish_1_1.png",
                     "ray/fish_100_0.png", "ray/fish_101_1.png"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reader's own warning about the loop
        manifest = sources.load(root)
    assert sorted(os.path.realpath(p) for p in paths) == sorted(os.path.realpath(p) for p in manifest.paths)
    assert files_not_predicted(root) == []
    assert links_not_followed(root) == [str(root / "ray" / "again")]


def test_the_command_line_names_a_folder_link_it_did_not_follow(model, tmp_path, capsys):
    root = _linked_folder(tmp_path)
    model.save(tmp_path / "m.keras")
    out = tmp_path / "p.csv"
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(root), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert (f"did not follow 1 folder link: {root / 'ray' / 'again'} (each leads back to a folder "
            "above it, a loop, or to a folder already read, whose images would be predicted twice)"
            ) in err
    assert "Thumbs.db" not in err
    assert len(_read_csv(out)) == 6
    with pytest.warns(UserWarning, match="did not follow 1 folder link"):
        result = predict(model, root)
    assert result.links_not_followed == [str(root / "ray" / "again")] and result.count == 6


def test_the_command_line_reads_large_images_with_max_pixels_and_names_the_value(model, folder, tmp_path, capsys):
    # before: predict had no --max-pixels (only audit did), and its report of a skipped large
    # image gave no way to read it
    from keras_species.data import images as images_module

    Image.new("RGB", (60, 60)).save(folder / "cod" / "scan.png")  # 3,600 pixels
    model.save(tmp_path / "m.keras")
    before = images_module.get_max_pixels()
    out = tmp_path / "p.csv"
    argv = ["predict", str(tmp_path / "m.keras"), str(folder / "cod" / "scan.png"), "--out", str(out)]
    assert cli.main([*argv, "--max-pixels", "2000"]) == 2
    assert capsys.readouterr().err.endswith(
        "\n1 file is over the decompression-bomb limit of 2,000 pixels (3,600 pixels): if you trust "
        "it, pass --max-pixels 3600 to read it, or resize it\n")
    assert images_module.get_max_pixels() == before
    assert cli.main([*argv, "--max-pixels", "3600"]) == 0
    assert _read_csv(out)[0]["error"] == "" and images_module.get_max_pixels() == before
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(folder), "--out", str(out),
                     "--max-pixels", "2000"]) == 0
    assert ("\n1 file is over the decompression-bomb limit of 2,000 pixels (3,600 pixels): if you "
            "trust it, pass --max-pixels 3600 to read it, or resize it\n") in capsys.readouterr().err


def test_a_folder_of_shards_given_as_input_is_named_as_such(model, folder, tmp_path, capsys, monkeypatch):
    # before: "nothing was predicted: no images found in sh (2 file(s) whose extension is not
    # an image extension ...)", after the model was opened; audit and split name such a folder
    import keras_species.predict as predict_module
    from keras_species.data.shards import write_shards

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture's empty file, left out of the shards
        write_shards(sources.load(folder), tmp_path / "sh")
    model.save(tmp_path / "m.keras")

    def no_model(*args, **kwargs):
        raise AssertionError("the model was opened")

    monkeypatch.setattr(predict_module, "open_predictor", no_model)
    said = (f"{tmp_path / 'sh'} is a folder of TFRecord shards written by `keras-species shard` "
            f"(it holds shards.json), not images: predict (and export's --representative) read "
            f"images, so give the data the shards were written from ({folder}); read the shards themselves in Python with "
            f"keras_species.data.shards.shard_dataset('{tmp_path / 'sh'}', image_size, batch_size)")
    for given in (tmp_path / "sh", tmp_path / "sh" / "shards.json"):
        assert cli.main(["predict", str(tmp_path / "m.keras"), str(given)]) == 2
        assert capsys.readouterr().err == f"keras-species predict: {said}\n"
    with pytest.raises(ValueError, match=re.escape(said)):
        predict(tmp_path / "m.keras", tmp_path / "sh")
    # a photo folder that also holds a shards.json is a photo folder
    (folder / "shards.json").write_text((tmp_path / "sh" / "shards.json").read_text())
    assert predict_module._shard_input_problem(folder) is None


def test_a_file_whose_name_is_not_utf8_is_a_skipped_row_not_a_crash(tmp_path: Path) -> None:
    # before: "Unable to convert element to UTF-8" from the input stream, for the whole run
    from keras_species.predict import image_dataset

    Image.new("RGB", (20, 10), (200, 0, 0)).save(tmp_path / "ok.png")
    odd = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9.png"))
    Path(odd).write_bytes((tmp_path / "ok.png").read_bytes())
    (paths, images, errors), = list(image_dataset([str(tmp_path / "ok.png"), odd], 16, 4))
    assert [os.fsdecode(p) for p in paths.numpy()] == [str(tmp_path / "ok.png"), odd]
    assert errors.numpy()[0] == b"" and errors.numpy()[1].startswith(b"its name is not valid UTF-8: rename it")
    assert images.numpy()[0, 8, 8, 0] > 150


def test_a_link_that_sorts_before_its_target_is_the_one_left_out(tmp_path):
    # linkdir -> "sub dir": the link claimed its target, the real folder was named a link not
    # followed, and its images came out under the link's path
    root = tmp_path / "photos"
    (root / "sub dir").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "sub dir" / "x.png")
    (root / "linkdir").symlink_to(root / "sub dir", target_is_directory=True)
    assert list(iter_image_paths(root)) == [str(root / "sub dir" / "x.png")]
    assert links_not_followed(root) == [str(root / "linkdir")]


def test_an_out_named_like_an_image_is_refused_and_a_second_image_is_not_called_out(model, folder, tmp_path, capsys):
    # `predict MODEL a.png b.png` suggested --out b.png, and the CSV replaced the photo
    model.save(tmp_path / "m.keras")
    a, b = sorted((folder / "cod").glob("*.png"))[:2]
    before = b.read_bytes()
    with pytest.raises(SystemExit) as stop:  # argparse's own exit
        cli.main(["predict", str(tmp_path / "m.keras"), str(a), str(b)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"{b} is an image: not an output name; the command takes one input" in err
    assert "did you mean --out" not in err
    assert cli.main(["predict", str(tmp_path / "m.keras"), str(a), "--out", str(b)]) == 2
    assert "predict writes a CSV (one row per image), not a .png file" in capsys.readouterr().err
    assert b.read_bytes() == before


def test_paths_in_an_array_a_set_or_a_generator_are_read(model, folder):
    # anything but a list or a tuple failed after the model loaded: "expected str, bytes or
    # os.PathLike object, not ndarray"
    paths = sorted(str(p) for p in (folder / "cod").glob("*.png"))[:2]
    for given in (np.array(paths), (p for p in paths), set(paths[:1])):
        result = predict(model, given)
        assert result.count == (1 if isinstance(given, set) else 2)
    with pytest.raises(TypeError, match=r"inputs: ndarray holding .* give image paths"):
        predict(model, np.array([1, 2]))
    # a dict or a DataFrame iterates its keys or column names: refused, not read as paths
    with pytest.raises(TypeError, match=r"inputs: a dict is a table: give its column of paths"):
        predict(model, {paths[0]: "cod"})


def test_an_out_named_like_a_photo_format_the_readers_skip_is_refused(model, folder, tmp_path):
    heic = tmp_path / "IMG_0001.HEIC"
    heic.write_bytes(b"photo")
    with pytest.raises(ValueError, match=r"predict writes a CSV \(one row per image\), not a .heic file"):
        predict(model, folder, out=heic)
    assert heic.read_bytes() == b"photo"


def test_a_heic_photo_named_jpg_is_reported_with_how_to_convert_it(model, tmp_path):
    heic = tmp_path / "IMG_1.jpg"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    with pytest.warns(UserWarning):
        result = predict(model, [str(heic), str(heic)])
    (path, reason), *_ = result.skipped
    assert "HEIC/HEIF photo" in reason and "convert it to JPEG" in reason


def test_a_link_above_a_link_followed_before_is_followed_without_reading_twice(tmp_path):
    # a_sub -> X/sub, then b_all -> X: b_all was refused whole and X's other images left out
    outside = tmp_path / "outside" / "X"
    for rel in ("x1.png", "top/t1.png", "sub/s1.png"):
        (outside / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(outside / rel)
    root = tmp_path / "photos"
    root.mkdir()
    (root / "a_sub").symlink_to(outside / "sub", target_is_directory=True)
    (root / "b_all").symlink_to(outside, target_is_directory=True)
    names = sorted(str(Path(p).relative_to(root)) for p in iter_image_paths(root))
    assert names == ["a_sub/s1.png", "b_all/top/t1.png", "b_all/x1.png"]  # each image once
    from keras_species.data import sources

    (root / "cls").mkdir()
    (root / "cls" / "a_sub").symlink_to(outside / "sub", target_is_directory=True)
    (root / "cls" / "b_all").symlink_to(outside, target_is_directory=True)
    assert sorted(os.path.relpath(p, root) for p in sources.image_files(root / "cls")) == [
        "cls/a_sub/s1.png", "cls/b_all/top/t1.png", "cls/b_all/x1.png"]


def test_an_out_that_is_a_runs_own_file_or_a_path_list_is_refused(tmp_path):
    # predict --out runs/x/split.csv replaced the run's split (its resume then failed), and
    # notes.txt (a path list the readers take) got CSV text
    from keras_species.predict import _check_csv_name

    run = tmp_path / "runs" / "quickstart" / "r1"
    run.mkdir(parents=True)
    for name in ("state.json", "split.csv", "predictions.csv"):
        (run / name).write_text("x")
    (run / "config.json").write_text('{"recipe": "quickstart"}')
    for name in ("split.csv", "predictions.csv"):
        with pytest.raises(ValueError, match=rf"{name} is the run folder .*r1's own file"):
            _check_csv_name(run / name)
    _check_csv_name(run / "new_predictions.csv")  # a name of its own is taken
    # not a run: a folder of the user's own with a config.json and a best.keras (predict's
    # default output was refused there on the second run), or a folder of theirs inside a run
    project = tmp_path / "project"
    project.mkdir()
    for name in ("config.json", "best.keras", "history.csv", "predictions.csv"):
        (project / name).write_text("{}")
    _check_csv_name(project / "predictions.csv")
    mine = run / "preds_new" / "batch1"
    mine.mkdir(parents=True)
    (mine / "predictions.csv").write_text("x")
    _check_csv_name(mine / "predictions.csv")
    (run / "fold0").mkdir()
    (run / "fold0" / "history.csv").write_text("x")
    with pytest.raises(ValueError, match="history.csv is the run folder"):  # a folder the run makes
        _check_csv_name(run / "fold0" / "history.csv")
    # a finished inaturalist_vgg16 run: metrics.json and its stage folders, no state.json
    inat = tmp_path / "runs" / "inaturalist_vgg16" / "r1"
    (inat / "c_fine_tune").mkdir(parents=True)
    (inat / "config.json").write_text('{"recipe": "inaturalist_vgg16"}')
    for name in ("metrics.json", "split.csv", "c_fine_tune/history.csv"):
        (inat / name).write_text("x")
    for name in ("split.csv", "c_fine_tune/history.csv"):
        with pytest.raises(ValueError, match=r"(split|history).csv is the run folder"):
            _check_csv_name(inat / name)
    # a scratch_cnn variant's folder (run/cnn4/folds.csv, run/cnn4/fold0/history.csv): a first
    # version looked one folder up only
    (run / "cnn4" / "fold0").mkdir(parents=True)
    for name in ("cnn4/folds.csv", "cnn4/fold0/history.csv"):
        (run / name).write_text("x")
        with pytest.raises(ValueError, match=r"(folds|history).csv is the run folder"):
            _check_csv_name(run / name)
    for name in ("notes.txt", "paths.lst"):
        with pytest.raises(ValueError, match=r"predict writes a CSV \(one row per image\), not a \.(txt|lst) file"):
            _check_csv_name(tmp_path / name)

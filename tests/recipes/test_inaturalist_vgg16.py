"""recipes.inaturalist_vgg16 end to end on a generated iNat/COCO JSON (with non-RGB images)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recipes.inaturalist_vgg16 import INaturalistVGG16Config, run
from tests.recipes.conftest import StopRun

pytestmark = pytest.mark.usefixtures("eager_tf")  # tiny runs: eager beats tracing each model

SPECIES = ("Danaus plexippus", "Apis mellifera", "Bombus terrestris", "Vanessa cardui")


def write_coco(root: Path, per_class=(6, 6, 6, 3), seed: int = 0) -> tuple[Path, list[str]]:
    """A COCO/iNat JSON; the three big classes get one greyscale (L) or CMYK JPEG each."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "train").mkdir(parents=True, exist_ok=True)
    images, annotations, odd = [], [], []
    for k, n in enumerate(per_class):
        for i in range(n):
            arr = np.full((24, 28, 3), (k * 60 % 256, 200 - k * 40, 90), np.uint8)
            arr = np.clip(arr + rng.normal(0, 8, arr.shape), 0, 255).astype(np.uint8)
            img = Image.fromarray(arr)
            if i == 0 and k < 3:
                img = img.convert("L" if k % 2 == 0 else "CMYK")
            file_name = f"train/{k}_{i}.jpg"
            img.save(root / file_name, quality=95)
            if i == 0 and k < 3:
                odd.append(str((root / file_name).absolute()))
            image_id = len(images) + 1
            images.append({"id": image_id, "file_name": file_name, "width": 28, "height": 24})
            annotations.append({"id": image_id, "image_id": image_id, "category_id": 10 + k})
    doc = {"images": images, "annotations": annotations,
           "categories": [{"id": 10 + k, "name": n} for k, n in enumerate(SPECIES)]}
    path = root / "train2017.json"
    path.write_text(json.dumps(doc))
    return path, odd


def test_help_lists_every_field():
    out = subprocess.run([sys.executable, "-m", "recipes.inaturalist_vgg16", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for f in INaturalistVGG16Config.__dataclass_fields__:
        assert "--" + f.replace("_", "-") in out, f


def test_defaults_are_r5s_settings():
    c = INaturalistVGG16Config()
    assert (c.top_classes, c.ratios, c.image_size, c.clean_policy) == (
        0.1, (0.6, 0.2, 0.2), 200, "drop_non_rgb")
    assert (c.stages, c.unfreeze_conv, c.augment, c.batch_size) == ("a,b,c", 4, "r5", 128)


def test_stages_and_scratch_on_a_coco_json(tmp_path):
    data, odd = write_coco(tmp_path / "inat")
    config = INaturalistVGG16Config(
        data=str(data), top_classes_count=3, out=tmp_path / "runs", name="t", weights="none",
        image_size=32, batch_size=8, features_epochs=1, frozen_epochs=1, fine_tune_epochs=1,
        scratch="shallow", scratch_epochs=1, feature_cache=str(tmp_path / "features"),
        verbose=0, mixed_precision="off",
    )
    result = run(config)
    root = result.run_dir
    # The non-RGB images were dropped and the rarest class left out (top 3 classes).
    split_paths = [line.split(",")[0] for line in (root / "split.csv").read_text().splitlines()[2:]]
    assert not set(odd) & set(split_paths) and len(split_paths) == 15
    dropped = (root / "report.md").read_text()
    assert "Cleaning dropped 3 image(s)" in dropped
    names = [r["model"] for r in result.comparison]
    assert names == ["a_features", "b_frozen", "c_fine_tune", "scratch_shallow"]
    for r in result.comparison:
        assert r["test_acc"] is not None and r["test_loss"] is not None
    for fig in ("accuracy_vs_loss.png", "top5_vs_auc.png", "pr_curves_a_features.png"):
        assert (root / "plots" / fig).is_file(), fig
    report = result.report_path.read_text()
    assert "## Models compared" in report and "accuracy_vs_loss.png" in report
    assert (root / "c_fine_tune" / "history.csv").is_file()
    assert (root / "a_features" / "model.keras").is_file()
    assert result.metrics["test"]["n"] == 3
    assert list(tmp_path.joinpath("features").glob("*.npz"))
    from keras_species.predict import predict

    pred = predict(root, split_paths[:2])
    assert set(pred.class_names) == set(SPECIES[:3])


def test_unknown_stage_is_refused(tmp_path):
    with pytest.raises(ValueError, match="choose among"):
        run(INaturalistVGG16Config(data="x.json", stages="a,z", out=tmp_path))


def test_a_bare_resume_continues_the_runs_own_data_and_stages(tmp_path, monkeypatch, stop_at):
    # --resume --out --name alone: the stored --data, stages and weights (before: "--data is
    # required", and the default stages' ImageNet weights were checked)
    from keras_species.data import prepare
    from keras_species.recipe import start_run
    from recipes import inaturalist_vgg16

    data, _ = write_coco(tmp_path / "inat")
    start_run("inaturalist_vgg16", INaturalistVGG16Config(
        data=str(data), out=tmp_path / "runs", name="x", stages="c", weights="none",
        image_size=32, scratch="deep"))
    prepare.forget_read_ahead()  # the new run's labelled-data check kept its reading of the JSON
    checked = []
    monkeypatch.setattr(inaturalist_vgg16, "check_weights", lambda *args: checked.append(args))
    seen = stop_at(prepare, "prepare_data")
    with pytest.raises(StopRun):
        run(INaturalistVGG16Config(out=tmp_path / "runs", name="x", resume=True))
    assert checked == [("vgg16", None, 32)] and seen == [str(data.absolute())]
    resumed = INaturalistVGG16Config(out=tmp_path / "runs", name="x", resume=True)
    _, _, derived = inaturalist_vgg16.open_run("inaturalist_vgg16", resumed,
                                               inaturalist_vgg16.checked_models)
    assert derived == (["b", "c"], ["deep"], None)


def test_a_resume_loads_stage_a_and_runs_count_its_epochs(tmp_path, monkeypatch, capsys):
    # before: stage (a) was trained again on every resume, and `runs` showed it with 0 epochs
    from keras_species.training.runs import RunFolder
    from recipes import inaturalist_vgg16

    data, _ = write_coco(tmp_path / "inat")
    config = INaturalistVGG16Config(
        data=str(data), top_classes_count=3, out=tmp_path / "runs", name="t", weights="none",
        stages="a", image_size=32, batch_size=8, features_epochs=2, feature_cache="none",
        verbose=0, mixed_precision="off",
    )
    first = run(config)
    folder = RunFolder(first.run_dir)
    assert folder.model_folders() == [{"folder": "a_features", "status": "trained", "epochs": 2}]
    rows = RunFolder(first.run_dir / "a_features").read_history()
    assert [r["epoch"] for r in rows] == [1, 2] and {r["phase"] for r in rows} == {"features"}
    assert "val_accuracy" in rows[0]

    def train_again(*args, **kwargs):
        raise AssertionError("stage (a) was trained again on resume")

    monkeypatch.setattr(inaturalist_vgg16, "_features_stage", train_again)
    capsys.readouterr()
    again = run(INaturalistVGG16Config(out=tmp_path / "runs", name="t", resume=True))
    assert again.metrics["test"]["accuracy"] == first.metrics["test"]["accuracy"]
    # before: the run folder keeps no state.json of its own, so the resume of this finished run
    # re-evaluated it without the README's line (`keras-species runs` said `done`)
    assert f"{first.run_dir} finished already: re-evaluating its models (best.keras chosen again) and " \
        "rewriting metrics.json and report.md" in capsys.readouterr().out
    assert folder.model_folders()[0]["epochs"] == 2


def test_group_ids_are_split_group_aware_by_default(tmp_path, stop_at):
    # before: the recipe always split stratified, ignoring --group-regex (LEAKAGE: groups on
    # more than one side, and an inflated test accuracy)
    from keras_species.data import prepare, splits
    from tests.conftest import write_image_folder

    data = write_image_folder(tmp_path / "fish", per_class=10, groups_per_class=5, size=(24, 20))
    assert INaturalistVGG16Config().split == "auto"
    seen = stop_at(prepare, "build_datasets")
    with pytest.raises(StopRun):
        run(INaturalistVGG16Config(data=str(data), group_regex=r"fish_(\d+)_", top_classes_count=3,
                                   weights="none", image_size=32, out=tmp_path / "runs", name="g"))
    m = seen[0]
    assert splits.leakage(m)["groups"] == {} and set(m.splits) == {"train", "val", "test"}
    side = json.loads((tmp_path / "runs" / "inaturalist_vgg16" / "g" / "split.prepared.json").read_text())
    assert side["split_kind"] == "group"
    seen.clear()
    with pytest.raises(StopRun):  # --split stratified still ignores the groups, as asked
        run(INaturalistVGG16Config(data=str(data), group_regex=r"fish_(\d+)_", top_classes_count=3,
                                   split="stratified", weights="none", image_size=32,
                                   out=tmp_path / "runs", name="s"))
    assert splits.leakage(seen[0])["groups"]


def test_a_top_classes_share_that_keeps_one_class_is_refused_before_the_run_folder(tmp_path):
    # before: the default 0.1 of 4 classes kept 1, and the run stopped at its split, once its
    # folder and audit existed, with "a stratified split needs at least 2 classes ... add another
    # class folder / label", naming no flag
    from keras_species.recipe import SettingError

    data, _ = write_coco(tmp_path / "inat")
    with pytest.raises(SettingError, match=r"--top-classes 0.1 keeps 1 class of the 4 of --data .* give "
                                           r"--top-classes 0.5 or more, or --top-classes-count N"):
        run(INaturalistVGG16Config(data=str(data), weights="none", out=tmp_path / "runs", name="t"))
    assert not (tmp_path / "runs").exists()


def test_a_top_classes_count_beyond_the_classes_is_refused_naming_the_flag(tmp_path, stop_at,
                                                                            source_loads):
    # before: "count must be between 1 and 4 (the number of classes), got 9", after the run
    # folder was made
    from keras_species.data import prepare
    from keras_species.recipe import SettingError

    data, _ = write_coco(tmp_path / "inat")
    with pytest.raises(SettingError, match=r"--top-classes-count 9: --data .* has 4 classes with images: give "
                                           r"2 to 4 \(a classifier needs 2 classes or more\)"):
        run(INaturalistVGG16Config(data=str(data), top_classes_count=9, weights="none",
                                   out=tmp_path / "runs", name="t"))
    assert not (tmp_path / "runs").exists()
    out = subprocess.run([sys.executable, "-m", "recipes.inaturalist_vgg16", "--data", str(data),
                          "--top-classes-count", "9", "--weights", "none", "--out",
                          str(tmp_path / "runs")], capture_output=True, text=True)
    assert out.returncode != 0 and "--top-classes-count 9: --data" in out.stderr
    source_loads.clear()
    seen = stop_at(prepare, "build_datasets")  # a count that fits: the JSON is parsed once
    with pytest.raises(StopRun):
        run(INaturalistVGG16Config(data=str(data), top_classes_count=3, weights="none",
                                   image_size=32, out=tmp_path / "runs", name="ok"))
    assert seen[0].num_classes == 3 and source_loads == [str(data)]


def test_stage_c_says_it_runs_stage_b_too(tmp_path, stop_at, capsys):
    # before: --stages c silently trained stage b as well
    from keras_species.data import prepare

    data, _ = write_coco(tmp_path / "inat")
    stop_at(prepare, "prepare_data")
    with pytest.raises(StopRun):
        run(INaturalistVGG16Config(data=str(data), stages="c", weights="none", image_size=32,
                                   top_classes=0.5, out=tmp_path / "runs", name="c"))
    assert "stage c starts from stage b: running b too" in capsys.readouterr().out
    with pytest.raises(StopRun):
        run(INaturalistVGG16Config(data=str(data), stages="b,c", weights="none", image_size=32,
                                   top_classes=0.5, out=tmp_path / "runs", name="bc"))
    assert "running b too" not in capsys.readouterr().out
    prepare.forget_read_ahead()  # the labelled-data check kept its reading of the JSON


def test_it_needs_train_val_and_test_splits():
    # val and test are read in every mode: a CSV split without one is refused before the run
    # folder (keras_species.recipe reads NEED_SPLITS; tested end to end in feature_classifiers)
    import dataclasses

    from keras_species.recipe import recipe_need_splits

    assert recipe_need_splits(INaturalistVGG16Config) == ("train", "val", "test")
    assert "need_splits" not in {f.name for f in dataclasses.fields(INaturalistVGG16Config)}  # not a flag

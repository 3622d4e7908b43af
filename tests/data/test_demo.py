"""The embedded demo data: real fish crops, six species, tracking-id groups, licence kept."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from keras_species.data import demo, sources, splits


def test_demo_manifest_shape_and_groups() -> None:
    m = demo.load_demo()
    assert m.source == "demo" and len(m) == 300 and m.num_classes == 6
    assert m.class_counts().tolist() == [50] * 6
    assert all(Path(p).is_absolute() and Path(p).parent.parent == demo.demo_root() for p in m.paths)
    assert m.groups is not None and all(g.isdigit() for g in m.groups)
    per_class_groups = [len({g for g, y in zip(m.groups, m.labels) if y == c}) for c in range(6)]
    assert min(per_class_groups) >= 40  # enough tracking ids for a group-aware val and test


def test_demo_is_small_real_rgb_pngs_with_licence() -> None:
    root = demo.demo_root()
    files = sorted(root.glob("*/*.png"))
    assert len(files) == 300
    assert sum(f.stat().st_size for f in files) < 8 * 1024 * 1024
    with Image.open(files[0]) as im:
        assert im.format == "PNG" and im.mode == "RGB"
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "Boom" in readme and "ICPR" in readme and "copyright notice is retained" in readme


def test_load_demo_by_name_and_group_split_has_val_and_test_per_class() -> None:
    m = splits.stratified_split(sources.load("demo"), (0.7, 0.15, 0.15), group_aware=True, seed=0)
    assert splits.leakage(m) == {"groups": {}, "paths": {}}
    for name in ("val", "test"):
        assert (m.split(name).class_counts() >= 5).all()

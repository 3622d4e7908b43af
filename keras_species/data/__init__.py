"""Data stages: sources → Manifest → audit/clean → splits → tf.data pipeline."""

from keras_species.data.manifest import UNLABELLED, Manifest, ManifestError

__all__ = ["Manifest", "ManifestError", "UNLABELLED"]

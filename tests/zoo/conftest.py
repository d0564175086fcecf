"""Fixtures for the model-zoo tests: the registered names, once per session."""
import warnings

import pytest

import topk_plugin.zoo as zoo


@pytest.fixture(scope="session", autouse=True)
def registered():
    """Every eager variant, registered as ``import topk_plugin`` does."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # registration must be silent (no timm overwrite warnings)
        return zoo.register_all(strict=True)

"""Validation of settings: every bad value is refused with a message naming the field and what is allowed."""

import math

import pytest

from style_transfer.config import ConfigError, StyleConfig, default_of, field_specs


def test_defaults_are_valid_and_documented():
    cfg = StyleConfig().validate()
    assert cfg.learning_rate == 0.02 and cfg.content_layer == "block4_conv2"
    assert cfg.layer_weights == pytest.approx((0.2,) * 5)
    for f in field_specs():
        assert f.metadata["help"], f.name
        default = default_of(f)
        if f.metadata["min"] is not None:
            assert f.metadata["min"] <= default <= f.metadata["max"], f.name


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": 0}, r"size: 0 is outside the allowed range \[32, 8192\]"),
        ({"size": 10_000}, r"size: 10000 is outside the allowed range \[32, 8192\]"),
        ({"steps": 0}, r"steps: 0 is outside the allowed range \[1, 5000\]"),
        ({"steps": 2.5}, r"steps: expected a whole number"),
        ({"steps": "many"}, r"steps: expected a number"),
        ({"learning_rate": math.nan}, r"learning_rate: must be a finite number"),
        ({"learning_rate": math.inf}, r"learning_rate: must be a finite number"),
        ({"style_weight": -1}, r"style_weight: -1.0 is outside the allowed range \[0, 1e\+06\]"),
        ({"init": "zeros"}, r"init: 'zeros' is not one of content, noise"),
        ({"device": "tpu"}, r"device: 'tpu' is not one of auto, cpu, cuda"),
        ({"content_layer": "conv9_9"}, r"unknown VGG-19 layer 'conv9_9'"),
        ({"style_layers": ()}, r"style_layers: give at least one layer"),
        ({"style_layer_weights": (1.0, 2.0)}, r"style_layer_weights: 2 weights given for 5 style layers"),
        ({"content_weight": 0, "style_weight": 0, "tv_weight": 0}, r"at least one must be above 0"),
        ({"colour": "red"}, r"unknown setting\(s\): colour"),
        ({"seed": True}, r"seed: expected a number"),
    ],
)
def test_invalid_values_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        StyleConfig().replace(**changes)


def test_strings_from_cli_or_api_are_converted():
    cfg = StyleConfig().replace(
        size="256", learning_rate="0.05", style_layers="conv1_1, relu2_1", style_layer_weights="0.5,0.5"
    )
    assert cfg.size == 256 and cfg.learning_rate == 0.05
    assert cfg.style_layers == ("block1_conv1", "block2_conv1") and cfg.layer_weights == (0.5, 0.5)

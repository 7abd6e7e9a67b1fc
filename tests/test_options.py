"""Option conversion, precedence and error messages (no cluster started)."""

from __future__ import annotations

import dask.config
import pytest

import daskdeploy
from daskdeploy.cli import parse_option_value
from daskdeploy.options import (
    boolean,
    duration_seconds,
    memory_size,
    text,
    text_list,
    whole_number,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("4", 4),
        ("-3", -3),
        ("0.5", 0.5),
        ("1e3", 1000.0),
        ("true", True),
        ("False", False),
        ("[a,b]", ["a", "b"]),
        ("[1, x]", [1, "x"]),
        ("[]", []),
        ("00:10:00", "00:10:00"),
        ("1GB", "1GB"),
        ("inf", "inf"),
        ("hello world", "hello world"),
    ],
)
def test_cli_option_values_are_typed(raw, expected):
    assert parse_option_value(raw) == expected
    assert type(parse_option_value(raw)) is type(expected)


def test_converters_accept_what_users_write():
    assert whole_number(1)("3") == 3
    assert boolean("yes") is True and boolean("off") is False
    assert memory_size("4GB") == 4_000_000_000
    assert memory_size("512MiB") == 512 * 2**20
    assert duration_seconds("5 minutes") == 300
    assert duration_seconds(90) == 90
    assert text(1234) == "1234"
    assert text_list("a") == ["a"]


@pytest.mark.parametrize(
    ("converter", "value", "fragment"),
    [
        (whole_number(1), 0, ">= 1"),
        (whole_number(1), True, "whole number"),
        (whole_number(1), 2.5, "whole number"),
        (boolean, "maybe", "true or false"),
        (memory_size, "lots", "memory size"),
        (memory_size, -5, "positive"),
        (duration_seconds, "soon", "duration"),
        (duration_seconds, 0, "positive"),
        (text, ["a"], "string"),
        (text, "  ", "non-empty"),
    ],
)
def test_converters_reject_bad_values_with_a_reason(converter, value, fragment):
    with pytest.raises(ValueError, match=fragment):
        converter(value)


def test_keyword_arguments_beat_config_which_beats_defaults():
    with dask.config.set({"daskdeploy.local.workers": 3, "daskdeploy.local.timeout": 5}):
        plan = daskdeploy.plan("local", workers=2)
    assert plan.options["workers"] == 2
    assert plan.options.sources["workers"] == "keyword argument"
    assert plan.options["timeout"] == 5
    assert plan.options.sources["timeout"] == "dask config daskdeploy.local.timeout"
    assert plan.options["threads_per_worker"] == 1
    assert plan.options.sources["threads_per_worker"] == "default"


def test_unknown_option_names_the_closest_match_and_the_valid_ones():
    with pytest.raises(daskdeploy.OptionError) as info:
        daskdeploy.plan("local", wrokers=2)
    message = str(info.value)
    assert "'wrokers'" in message and "Did you mean 'workers'?" in message
    assert "threads_per_worker" in message


def test_wrong_type_names_option_value_and_source():
    with pytest.raises(daskdeploy.OptionError) as info:
        daskdeploy.plan("local", threads_per_worker="many")
    message = str(info.value)
    assert "threads_per_worker" in message and "'many'" in message
    assert "keyword argument" in message


def test_bad_value_in_dask_config_is_reported_with_its_key():
    with (
        dask.config.set({"daskdeploy.local.workers": -1}),
        pytest.raises(daskdeploy.OptionError, match=r"dask config daskdeploy\.local\.workers"),
    ):
        daskdeploy.plan("local")


def test_unknown_key_in_dask_config_is_reported():
    with (
        dask.config.set({"daskdeploy.local.n_workers": 2}),
        pytest.raises(daskdeploy.OptionError, match="n_workers"),
    ):
        daskdeploy.plan("local")


def test_hyphenated_config_keys_are_accepted():
    with dask.config.set({"daskdeploy.local.threads-per-worker": 2}):
        assert daskdeploy.plan("local").options["threads_per_worker"] == 2


def test_every_option_has_a_packaged_default():
    from daskdeploy.config import packaged_defaults
    from daskdeploy.registry import BUILTIN_BACKENDS, get_backend

    for name in BUILTIN_BACKENDS:
        declared = {option.name for option in get_backend(name).options()}
        assert declared == set(packaged_defaults()[name]), name

"""One adapter from option dataclasses to flags, mappings and back; the catalog's method entries."""

from __future__ import annotations

import argparse

import pytest

from salt_transfer.catalog import METHODS, SaltOptions, method_entries
from salt_transfer.errors import InputError
from salt_transfer.options import add_arguments, defaults, from_args, from_mapping, to_flags
from salt_transfer.settings import FastTextOptions, StandinOptions, TrainArguments


def parse(cls, argv, **kw):
    parser = argparse.ArgumentParser()
    add_arguments(parser, cls, **kw)
    return parser.parse_args(argv)


def test_flags_round_trip_and_defaults_stay_in_the_dataclass():
    opts = from_args(FastTextOptions, parse(FastTextOptions, ["--dim", "8"]))
    assert opts == FastTextOptions(dim=8)
    flags = to_flags(FastTextOptions, {"dim": 8, "model": "skipgram"})
    back = from_args(FastTextOptions, parse(FastTextOptions, flags.split()))
    assert back.dim == 8 and back.model == "skipgram" and back.epochs == defaults(FastTextOptions)["epochs"]


def test_booleans_are_flag_pairs():
    args = parse(TrainArguments, ["--gradient-checkpointing"], exclude=[])
    assert args.gradient_checkpointing is True
    assert to_flags(TrainArguments, {"gradient_checkpointing": False}) == "--no-gradient-checkpointing"


@pytest.mark.parametrize(
    "cls,values,message",
    [
        (FastTextOptions, {"dim": "x"}, "expected int"),
        (FastTextOptions, {"dim": 0}, "must be at least 2"),
        (FastTextOptions, {"model": "glove"}, "choose one of cbow, skipgram"),
        (FastTextOptions, {"dimm": 3}, "unknown dimm"),
        (StandinOptions, {"hidden": 30, "heads": 4}, "not divisible"),
        (SaltOptions, {"norm_cap": -1}, "must be at least 0"),
    ],
)
def test_bad_values_name_the_option(cls, values, message):
    with pytest.raises(InputError, match=message):
        from_mapping(cls, values, label="test")


def test_required_fields_are_named():
    with pytest.raises(InputError, match="missing required --model"):
        from_mapping(
            TrainArguments,
            {"train_file": "t", "output_dir": "o", "scratch_dir": "s", "log_csv": "l"},
            flags=True,
        )


def test_every_field_has_help():
    for cls in (FastTextOptions, StandinOptions, TrainArguments, *(m.options for m in METHODS.values())):
        for name, field in cls.__dataclass_fields__.items():
            assert field.metadata.get("help"), (cls.__name__, name)


def test_method_entries_resolve_variants_and_refuse_bad_ones():
    entries = method_entries({"salt": {}, "salt-capped": {"method": "salt", "norm_cap": 1.0}, "ofa": None})
    assert entries["salt-capped"].method == "salt" and entries["salt-capped"].options == {"norm_cap": 1.0}
    assert entries["ofa"].info.needs == frozenset({"aux"})
    for bad, message in (
        ({"wechsel": {}}, "unknown method 'wechsel'"),
        ({"ofa": {"rnk": 5}}, "unknown rnk"),
        ({"x": {"method": "procrustes", "kind": "banana"}}, "choose one of ols, orthogonal"),
        ({"bad name": {}}, "becomes a path component"),
    ):
        with pytest.raises(InputError, match=message):
            method_entries(bad)


def test_parser_and_help_import_no_torch():
    """`salt-transfer --help` must answer without importing torch (start-up under a second)."""
    import subprocess
    import sys

    code = "import sys; from salt_transfer.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    code = "import sys; import salt_transfer.report, salt_transfer.audit; print([m for m in ('torch', 'transformers') if m in sys.modules])"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "[]"
    )

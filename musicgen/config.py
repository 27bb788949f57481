"""Dataclass configs on the command line and in saved JSON: one flag per field, unknown flags are
errors, and a saved config loads into today's class (retired options only at their neutral value)."""

from __future__ import annotations

import argparse
import dataclasses

from musicgen.errors import MusicgenError


def add_dataclass_args(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """One --flag per dataclass field; the field's default shows in --help."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        elif isinstance(f.default, tuple):  # several values after one flag: --data A B C
            parser.add_argument(flag, nargs="+", type=str, default=f.default,
                                help=f"default: {' '.join(f.default) or '(none)'}")
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, help=f"default: {f.default}")


def from_args(cls, args: argparse.Namespace, skip: tuple[str, ...] = ()):
    """The dataclass filled from parsed flags (its __post_init__ checks them); `skip`: fields left
    at their defaults because a flag of the same name means something else there."""
    names = {f.name for f in dataclasses.fields(cls)} - set(skip)
    return cls(**{k: v for k, v in vars(args).items() if k in names})


def restore(cls, saved: dict, retired: dict[str, object] | None = None):
    """`cls` from a config saved by an earlier version: options since removed are dropped where
    they hold the value that made them do nothing; a run that relied on one is refused by name."""
    retired = retired or {}
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in saved.items():
        if key in names:
            continue
        if key in retired and saved[key] == retired[key]:
            continue
        raise MusicgenError(f"this saved config sets {key}={value!r}, an option this version no longer "
                            "has; load it at the git tag v0.1-experiments (commit 592f34e)")
    return cls(**{k: v for k, v in saved.items() if k in names})


def check_number(name: str, value, lo: float, hi: float, whole: bool = False, also: tuple = ()):
    """`value` as a finite number from lo to hi (an int where `whole`; a value in `also` passes as
    is), else MusicgenError naming the setting and its range: NaN, infinities, None and strings
    from an API client get a sentence, never a traceback or a silent pass (NaN fails every <)."""
    if value in also and not isinstance(value, bool):
        return value
    kind = "a whole number" if whole else "a number"
    allowed = f"{kind} from {_plain(lo)} to {_plain(hi)}" + "".join(f" (or {_plain(a)})" for a in also)
    number = isinstance(value, (int, float)) and not isinstance(value, bool) or hasattr(value, "dtype")
    if not number or not lo <= float(value) <= hi or whole and float(value) != int(value):
        raise MusicgenError(f"{name} must be {allowed}, not {value!r}")
    return int(value) if whole else float(value)


def _plain(x: float) -> str:
    """4294967295, 0.05, 20: numbers as a person writes them."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"

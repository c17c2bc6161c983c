"""Argument types of the bench's command line: each parses one value or raises
argparse.ArgumentTypeError saying what is expected (argparse adds the option's name)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from bench.workloads.keys import KeyDistribution

T = TypeVar("T")


def whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
    return value


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def non_negative_int(text: str) -> int:
    return whole_number(text, 0)


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def kafka_setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE (e.g. fetch.wait.max.ms=10), got {text!r}"
        )
    return key.strip(), value.strip()


def key_distribution(text: str) -> str:
    """`uniform`, `zipf:S` or `hot:F`, normalized (`zipf:1` for `ZIPF:1.0`)."""
    try:
        return str(KeyDistribution.parse(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _comma_list(text: str, parse_one: Callable[[str], T]) -> list[T]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(
            f"expected one or more comma-separated values, got {text!r}"
        )
    return [parse_one(part) for part in parts]


def rate_list(text: str) -> list[float]:
    """Offered rates in records/s: `5000` or `2000,5000,10000`."""
    return _comma_list(text, positive_float)


def int_list(text: str) -> list[int]:
    """Whole numbers >= 1: `2` or `1,2,4`."""
    return _comma_list(text, positive_int)

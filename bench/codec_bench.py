"""Micro-benchmark of the process engine's IPC codec: `python -m bench.codec_bench`.

Times encode + decode of one record batch (default 256 records, a pipe message's: 8-byte keys,
100-byte values, two headers), and of one result batch (work_id, ok, attempts, error per
record), for:

- plain msgpack: the minimal msgpack-package path (build the list of lists, packb, unpackb,
  construct the Records), with no checks: the reference the native codec is measured against;
- the codec's msgpack twin (`load_codec("msgpack")`): the same plus the shape and type checks;
- the native codec (`load_codec("native")`), when built.

Prints microseconds per batch (best of several repeats) and the speed-up ratios. Opt-in
measurement only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import msgpack

from pyrallel_consumer.codec import Codec, Result, available_codecs, load_codec
from pyrallel_consumer.record import Record


def make_batch(size: int, value_size: int = 100) -> list[tuple[int, Record]]:
    value = bytes(range(256)) * (value_size // 256 + 1)
    return [
        (
            1_000 + i,
            Record(
                "orders.v1",
                i % 8,
                12_345_678 + i,
                b"key-%04d" % (i % 1000),
                value[i % 7 : i % 7 + value_size],
                [("trace-id", b"0af7651916cd43dd"), ("source", b"checkout")],
                1_732_000_000_000 + i,
            ),
        )
        for i in range(size)
    ]


def plain_msgpack_round_trip(items: Sequence[tuple[int, Record]]) -> list[tuple[int, Record]]:
    batch = [
        [w, r.topic, r.partition, r.offset, r.key, r.value, r.headers, r.timestamp]
        for w, r in items
    ]
    data = msgpack.packb([0, batch], use_bin_type=True)
    _, decoded = msgpack.unpackb(data, raw=False, use_list=False)
    return [
        (w, Record(t, p, o, k, v, None if h is None else list(h), ts))
        for w, t, p, o, k, v, h, ts in decoded
    ]


def best_times_us(
    candidates: dict[str, Callable[[], object]], repeat: int, number: int
) -> dict[str, float]:
    """Best time per call of each candidate, in microseconds. The candidates take turns within
    every repeat, so a noisy neighbour on the machine slows them alike rather than one of them."""
    best = dict.fromkeys(candidates, float("inf"))
    for _ in range(repeat):
        for name, function in candidates.items():
            start = time.perf_counter()
            for _ in range(number):
                function()
            best[name] = min(best[name], (time.perf_counter() - start) / number)
    return {name: seconds * 1e6 for name, seconds in best.items()}


def _check(ok: bool, what: str) -> None:
    """Time only implementations that round-trip correctly."""
    if not ok:
        raise SystemExit(f"codec_bench: {what} did not round-trip the batch unchanged")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="IPC codec micro-benchmark")
    parser.add_argument("--records", type=int, default=256, help="records per batch")
    parser.add_argument("--value-size", type=int, default=100, help="bytes per record value")
    parser.add_argument("--repeat", type=int, default=7, help="timing repeats (best is kept)")
    parser.add_argument("--number", type=int, default=2000, help="round trips per repeat")
    args = parser.parse_args(argv)

    items = make_batch(args.records, args.value_size)
    # Every tenth record failed (outcome 1) after 3 attempts, the rest succeeded (0) on the first.
    results = [
        Result(w, 0 if i % 10 else 1, 1 if i % 10 else 3, None if i % 10 else "Traceback ...")
        for i, (w, _) in enumerate(items)
    ]
    _check(plain_msgpack_round_trip(items) == items, "plain msgpack")

    def plain_records() -> object:
        return plain_msgpack_round_trip(items)

    def plain_results() -> object:
        data = msgpack.packb([1, [list(r) for r in results]], use_bin_type=True)
        return msgpack.unpackb(data, raw=False, use_list=False)

    record_runs: dict[str, Callable[[], object]] = {"plain msgpack": plain_records}
    result_runs: dict[str, Callable[[], object]] = {"plain msgpack": plain_results}
    for name in ["msgpack", *[n for n in available_codecs() if n != "msgpack"]]:
        codec = load_codec(name)
        _check(codec.decode_records(codec.encode_records(items)) == items, f"{name} records")
        _check(codec.decode_results(codec.encode_results(results)) == results, f"{name} results")

        def records_round_trip(c: Codec = codec) -> object:
            return c.decode_records(c.encode_records(items))

        def results_round_trip(c: Codec = codec) -> object:
            return c.decode_results(c.encode_results(results))

        record_runs[f"codec {name}"] = records_round_trip
        result_runs[f"codec {name}"] = results_round_trip

    record_us = best_times_us(record_runs, args.repeat, args.number)
    result_us = best_times_us(result_runs, args.repeat, args.number)
    timings = {name: (record_us[name], result_us[name]) for name in record_runs}

    size = len(load_codec("msgpack").encode_records(items))
    print(f"batch: {args.records} records, {args.value_size}-byte values, {size} bytes encoded")
    print(f"{'implementation':<16} {'records enc+dec':>16} {'results enc+dec':>16}")
    for name, (rec_us, res_us) in timings.items():
        print(f"{name:<16} {rec_us:>13.2f} us {res_us:>13.2f} us")
    if "codec native" in timings:
        native = timings["codec native"]
        for reference in ("plain msgpack", "codec msgpack"):
            ref = timings[reference]
            print(
                f"native speed-up vs {reference}: records {ref[0] / native[0]:.2f}x, "
                f"results {ref[1] / native[1]:.2f}x"
            )
    else:
        print("native codec not built (make build-ext): no ratio")


if __name__ == "__main__":
    main()

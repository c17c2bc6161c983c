"""Micro-benchmark of the process engine's IPC codec: `python -m bench.codec_bench`.

Times encode + decode of one record batch (default 64 records: 8-byte keys, 100-byte values,
two headers), and of one result batch, for:

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

from pyrallel_consumer.codec import available_codecs, load_codec
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


def best_time_us(function: Callable[[], object], repeat: int, number: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            function()
        best = min(best, (time.perf_counter() - start) / number)
    return best * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=64, help="records per batch")
    parser.add_argument("--value-size", type=int, default=100, help="bytes per record value")
    parser.add_argument("--repeat", type=int, default=7, help="timing repeats (best is kept)")
    parser.add_argument("--number", type=int, default=2000, help="round trips per repeat")
    args = parser.parse_args(argv)

    items = make_batch(args.records, args.value_size)
    results = [(w, i % 10 != 0, None if i % 10 else "Traceback ...\nValueError: x") for i, (w, _)
               in enumerate(items)]
    assert plain_msgpack_round_trip(items) == items

    timings: dict[str, tuple[float, float]] = {}
    record_fn = plain_msgpack_round_trip
    result_data = msgpack.packb([1, results], use_bin_type=True)

    def plain_results() -> object:
        msgpack.unpackb(msgpack.packb([1, [list(r) for r in results]], use_bin_type=True),
                        raw=False, use_list=False)
        return result_data

    timings["plain msgpack"] = (
        best_time_us(lambda: record_fn(items), args.repeat, args.number),
        best_time_us(plain_results, args.repeat, args.number),
    )
    for name in ["msgpack", *[n for n in available_codecs() if n != "msgpack"]]:
        codec = load_codec(name)
        assert codec.decode_records(codec.encode_records(items)) == items
        timings[f"codec {name}"] = (
            best_time_us(lambda c=codec: c.decode_records(c.encode_records(items)),
                         args.repeat, args.number),
            best_time_us(lambda c=codec: c.decode_results(c.encode_results(results)),
                         args.repeat, args.number),
        )

    size = len(load_codec("msgpack").encode_records(items))
    print(f"batch: {args.records} records, {args.value_size}-byte values, {size} bytes encoded")
    print(f"{'implementation':<16} {'records enc+dec':>16} {'results enc+dec':>16}")
    for name, (rec_us, res_us) in timings.items():
        print(f"{name:<16} {rec_us:>13.2f} us {res_us:>13.2f} us")
    if "codec native" in timings:
        native = timings["codec native"]
        for reference in ("plain msgpack", "codec msgpack"):
            ref = timings[reference]
            print(f"native speed-up vs {reference}: records {ref[0] / native[0]:.2f}x, "
                  f"results {ref[1] / native[1]:.2f}x")
    else:
        print("native codec not built (make build-ext): no ratio")


if __name__ == "__main__":
    main()

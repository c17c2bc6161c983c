"""Which key each produced record gets: `--key-distribution uniform|zipf:S|hot:F`.

The sequence is deterministic (no random seed to record) and the number of records per key is
exact, so the hottest key's share, and with it the bound under key order, is known before the
run. `uniform` keeps the round-robin `seq mod num_keys`; `zipf:S` gives key i (0-based) a weight
of 1 / (i + 1)^S; `hot:F` gives key 0 the fraction F of the records and spreads the rest evenly.
Skewed keys are interleaved evenly over the run (each key's records are spaced by the run's
length over its count), so the hot key is busy from the first record to the last, as a real hot
key would be, instead of arriving in one block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DISTRIBUTION_KINDS = ("uniform", "zipf", "hot")


def key_name(index: int) -> bytes:
    """The key of key index `index`: ``key-<index>``."""
    return b"key-%d" % index


@dataclass(frozen=True)
class KeyDistribution:
    """A parsed `--key-distribution`: `kind` is uniform, zipf or hot; `parameter` the zipf
    exponent S (> 0) or the hot key's fraction F (0 < F < 1); None for uniform."""

    kind: str = "uniform"
    parameter: float | None = None

    @classmethod
    def parse(cls, text: str) -> KeyDistribution:
        """`uniform`, `zipf:S` or `hot:F`; ValueError saying what is allowed."""
        kind, _, raw = text.strip().partition(":")
        kind = kind.lower()
        if kind == "uniform" and not raw:
            return cls()
        if kind not in ("zipf", "hot") or not raw:
            raise ValueError(
                f"expected uniform, zipf:S or hot:F (e.g. zipf:1.0, hot:0.3); got {text!r}"
            )
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{kind}: expected a number after ':', got {raw!r}") from None
        if kind == "zipf" and not 0 < value < math.inf:
            raise ValueError(f"zipf exponent must be > 0, got {raw}")
        if kind == "hot" and not 0 < value < 1:
            raise ValueError(f"hot key fraction must be between 0 and 1 (exclusive), got {raw}")
        return cls(kind, value)

    def __str__(self) -> str:
        return self.kind if self.parameter is None else f"{self.kind}:{self.parameter:g}"

    def weights(self, num_keys: int) -> list[float]:
        """Relative share of each key index (sums to 1)."""
        parameter = self.parameter if self.parameter is not None else 0.0
        if self.kind == "zipf":
            raw = [1 / (i + 1) ** parameter for i in range(num_keys)]
        elif self.kind == "hot" and num_keys > 1:
            rest = (1 - parameter) / (num_keys - 1)
            raw = [parameter] + [rest] * (num_keys - 1)
        else:
            raw = [1.0] * num_keys
        total = math.fsum(raw)
        return [w / total for w in raw]

    def counts(self, num_messages: int, num_keys: int) -> list[int]:
        """Records per key index, summing to `num_messages` (largest remainders)."""
        if self.kind == "uniform":
            base, extra = divmod(num_messages, num_keys)
            return [base + (1 if i < extra else 0) for i in range(num_keys)]
        exact = [w * num_messages for w in self.weights(num_keys)]
        counts = [math.floor(x) for x in exact]
        short = num_messages - sum(counts)
        by_remainder = sorted(range(num_keys), key=lambda i: (counts[i] - exact[i], i))
        for i in by_remainder[:short]:
            counts[i] += 1
        return counts

    def key_indices(self, num_messages: int, num_keys: int) -> list[int]:
        """The key index of every record, in production order."""
        if self.kind == "uniform":
            return [seq % num_keys for seq in range(num_messages)]
        # Record j of a key with c records is placed at (j + 0.5) / c of the run; sorting those
        # positions interleaves every key evenly (ties: lower key index first).
        slots = [
            ((j + 0.5) / count, index)
            for index, count in enumerate(self.counts(num_messages, num_keys))
            for j in range(count)
        ]
        slots.sort()
        return [index for _, index in slots]


def hottest_share(counts: list[int]) -> float:
    """The busiest group's fraction of the records (NaN without records)."""
    total = sum(counts)
    return max(counts) / total if total else math.nan

"""The one way a planned sample is refused, from the image intake to the rejects table."""

from __future__ import annotations


class SampleRejected(Exception):
    """A sample that cannot be made: a hostile input, a rejected parent, no mask that fits.

    `reason` is short and stable (tests and `inspect` group by it); `detail` says what exactly.
    Raised where the problem is found, or returned in a stage's output list for one sample of a
    batch; the shard builder turns it into a row of rejects.parquet, so it never aborts a shard.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

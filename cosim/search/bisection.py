"""The highest integer load that passes a monotone test: doubling bracket, then bisection."""

from __future__ import annotations

from collections.abc import Callable


def highest_passing(passes: Callable[[int], bool], lo: int, hi: int,
                    steps: int) -> tuple[int | None, int | None]:
    """(highest load known to pass, lowest load known to fail) for a monotone `passes`.

    `lo` is tried first (None, lo when it fails); then lo*2, lo*4, ... up to `hi` until one
    fails; then at most `steps` bisection probes between the last pass and the first fail.
    A fail of None means every probe up to `hi` passed.
    """
    if not passes(lo):
        return None, lo
    good, bad = lo, None
    x = lo
    while x < hi:
        x = min(hi, x * 2)
        if passes(x):
            good = x
        else:
            bad = x
            break
    for _ in range(steps):
        if bad is None or bad - good <= 1:
            break
        mid = (good + bad) // 2
        if passes(mid):
            good = mid
        else:
            bad = mid
    return good, bad

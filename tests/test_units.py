"""bench.units.si: three significant digits under the right prefix, in every table and figure."""

from __future__ import annotations

import pytest

from bench.units import si


@pytest.mark.parametrize(
    "value,unit,text",
    [
        (1234567, "", "1.23M"),
        (250_000, "", "250K"),
        (999.4, "", "999"),
        (12.5, "", "12.5"),
        (12345, "ns", "12.3µs"),
        (999.4, "ns", "999ns"),
        (2.5e9, "ns", "2.5s"),
        (1.18 * 2**30, "B/s", "1.18 GiB/s"),
        (500, "B/s", "500 B/s"),
        (None, "", "-"),
        (float("nan"), "ns", "-"),
        # rounding to three digits reaches the next prefix: never '1e+03K' (seen in the end-of-run
        # table at 999.6K IOPS), '1000ns' or '1.02e+03 B/s'
        (999_600, "", "1M"),
        (-999_600, "", "-1M"),
        (999.6, "", "1K"),
        (999.6, "ns", "1µs"),
        (999_999, "ns", "1ms"),
        (1023.9, "B/s", "1 KiB/s"),
        (1_048_000, "B/s", "0.999 MiB/s"),
    ],
)
def test_si(value, unit, text):
    assert si(value, unit) == text


def test_no_exponent_below_a_thousand_giga():
    values = [m * 10**e for e in range(-1, 12) for m in (0.9995, 0.99951, 0.9996, 0.99999, 1.0, 1.5)]
    for unit in ("", "ns", "B/s"):
        assert [v for v in values if "e" in si(v, unit)] == []

"""MAC counts in the unit their size reads best in: a tiny model's 5.3 GMAC, not 0.005317 TMAC."""

from __future__ import annotations

UNITS = ((1e12, "TMAC"), (1e9, "GMAC"), (1e6, "MMAC"), (1e3, "kMAC"))


def mac_unit(macs: float) -> tuple[float, str]:
    """``(scale, name)`` of the largest unit that keeps ``macs`` at 1 or more (plain MAC below a thousand).

    Example:
        >>> mac_unit(5.317e9)
        (1000000000.0, 'GMAC')
    """
    return next(((scale, name) for scale, name in UNITS if abs(macs) >= scale), (1.0, "MAC"))


def format_macs(macs: float, digits: int = 4) -> str:
    """``macs`` with ``digits`` significant digits in its unit, e.g. ``"5.317 GMAC"``."""
    scale, name = mac_unit(macs)
    return f"{macs / scale:.{digits}g} {name}"

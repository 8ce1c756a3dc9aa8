"""Unit conversions, one definition each (speeds, decibels)."""

from __future__ import annotations

import numpy as np

def kmh_to_mps(speed_kmh):
    """km/h to m/s; scalar in, float out, array in, array out."""
    if np.ndim(speed_kmh):
        return np.asarray(speed_kmh, dtype=float) / 3.6
    return float(speed_kmh) / 3.6


def db_to_linear(value_db):
    """Decibels to a linear power ratio."""
    return 10.0 ** (np.asarray(value_db, dtype=float) / 10.0)


def dbm_to_watt(value_dbm):
    """dBm to watts."""
    return 10.0 ** ((np.asarray(value_dbm, dtype=float) - 30.0) / 10.0)


def watt_to_dbm(value_w):
    """Watts to dBm (``-inf`` for 0 W)."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.asarray(value_w, dtype=float)) + 30.0


def linear_to_db(value):
    """A linear power ratio to decibels (``-inf`` for 0)."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.asarray(value, dtype=float))

"""Mobility models: how vehicles move along the lanes (plug-ins, see ``MOBILITY``)."""

from v2xsim.mobility.base import MobilityModel

__all__ = ["MobilityModel"]

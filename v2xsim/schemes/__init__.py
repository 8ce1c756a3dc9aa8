"""Beam-alignment schemes (plug-ins): the Scheme contract, classical baselines and GBA."""

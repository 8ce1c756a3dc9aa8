"""Beam-alignment schemes: classical baselines and learned agents."""

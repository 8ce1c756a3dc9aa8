"""Tests of v2xsim.sensing."""

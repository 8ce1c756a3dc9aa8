"""Tests of v2xsim.data."""

"""v2xsim: discrete-event co-simulation of mmWave V2X beam alignment.

Sub-packages are imported lazily; ``import v2xsim`` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]

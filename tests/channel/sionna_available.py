"""Whether Sionna RT can be imported here, shared by the Sionna RT test modules."""

import pytest

from v2xsim.channel.sionna_rt import import_sionna

try:
    import_sionna()
    SIONNA_ERROR = None
except ImportError as exc:  # pragma: no cover - CI installs sionna-rt
    SIONNA_ERROR = str(exc)
needs_sionna = pytest.mark.skipif(SIONNA_ERROR is not None, reason=f"sionna-rt not importable: {SIONNA_ERROR}")

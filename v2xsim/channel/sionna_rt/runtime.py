"""Importing Sionna RT with a working Dr.Jit JIT back-end.

On CPU, Dr.Jit needs LLVM >= 16 (Debian's LLVM 15 aborts with "Cannot select fmaximum"):
when ``DRJIT_LIBLLVM_PATH`` is unset, a ``libLLVM.so.19.1`` (``apt-get install
libllvm19``) or another LLVM 16-20 in the usual library directories is used. With a CUDA
GPU, Sionna's CUDA variant is used.
"""

from __future__ import annotations

import os
import sys
import sysconfig

#: LLVM major versions Dr.Jit can JIT with, most preferred first
LLVM_VERSIONS: tuple[int, ...] = (19, 20, 18, 17, 16)
#: oldest LLVM major version that does not abort on the first trace
MIN_LLVM_VERSION = 16
#: Mitsuba variants Sionna RT can run on, tried in this order
SIONNA_VARIANTS: tuple[str, ...] = ("cuda_ad_mono_polarized", "llvm_ad_mono_polarized")


def locate_libllvm() -> str | None:
    """Path of a libLLVM >= 16 shared library in the usual places, preferring LLVM 19."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    dirs = [f"/usr/lib/{multiarch}", "/usr/lib64", "/usr/lib"]
    for version in LLVM_VERSIONS:
        candidates = []
        for directory in [*dirs, f"/usr/lib/llvm-{version}/lib"]:
            candidates += [f"{directory}/libLLVM.so.{version}.1", f"{directory}/libLLVM-{version}.so",
                           f"{directory}/libLLVM-{version}.so.1", f"{directory}/libLLVM.so.{version}"]
        for path in candidates:
            if os.path.isfile(path):
                return path
    return None


def import_sionna():
    """Import ``sionna.rt``, ``mitsuba`` and ``drjit`` with a working JIT back-end.

    Sets ``DRJIT_LIBLLVM_PATH`` (when unset and Dr.Jit is not imported yet) to
    :func:`locate_libllvm`. Raises ImportError with the install command when sionna-rt is
    missing or Dr.Jit loaded an LLVM older than 16.

    Returns:
        ``(sionna.rt, mitsuba, drjit)``.
    """
    if not os.environ.get("DRJIT_LIBLLVM_PATH") and "drjit" not in sys.modules:
        path = locate_libllvm()
        if path:
            os.environ["DRJIT_LIBLLVM_PATH"] = path
    try:
        import drjit as dr
        import mitsuba as mi
        import sionna.rt as rt
    except ImportError as exc:
        raise ImportError("the 'sionna_rt' channel backend needs sionna-rt 2.2: "
                          "pip install 'v2xsim[rt]' (or sionna-rt==2.2.0)") from exc
    variant = mi.variant() or ""
    if not variant.endswith("_ad_mono_polarized"):
        # another library picked a rendering variant; Sionna RT needs a polarised one
        mi.set_variant(*SIONNA_VARIANTS)
    if mi.variant().startswith("llvm"):
        version = tuple(dr.detail.llvm_version() or ())
        if version and version[0] < MIN_LLVM_VERSION:
            # LLVM 15 aborts the process ("Cannot select fmaximum") on the first trace
            raise ImportError(
                f"Dr.Jit loaded LLVM {'.'.join(map(str, version))} "
                f"(DRJIT_LIBLLVM_PATH={os.environ.get('DRJIT_LIBLLVM_PATH', 'unset')}); Sionna RT on CPU "
                "needs LLVM >= 16: apt-get install libllvm19, or point DRJIT_LIBLLVM_PATH at a newer libLLVM")
    return rt, mi, dr

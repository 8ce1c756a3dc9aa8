"""Radio materials of Mitsuba/Sionna scenes at mmWave carriers.

Sionna's ITU-R P.2040 materials are fitted over frequency ranges; outside them Sionna
raises when the carrier is set. At 60 GHz several common materials have no valid range
(``brick`` is fitted to 40 GHz only, ``asphalt_concrete`` / ``plywood`` / the tiles to
40 GHz, the grounds to 10 GHz, ``clear_acrylic`` from 110 GHz) and ``marble``'s range ends
at exactly 60 GHz, which Sionna's single-precision check misses by rounding. Every ITU
material of a scene that is not valid at the carrier (with a relative margin of 1e-4 at the
range ends) is replaced before loading:

==================  =================  ===================================================
original            substitute         why
==================  =================  ===================================================
brick               concrete           masonry; closest permittivity with a 60 GHz fit
marble              concrete           dense stone facade
asphalt_concrete    concrete           road surface
very_dry_ground     concrete           paved / compacted ground
medium_dry_ground   concrete
wet_ground          concrete
plywood             wood               same material family
vinyl_tile          floorboard         floor covering (floorboard is fitted 50-100 GHz)
carpet_tile         floorboard
clear_acrylic       glass              transparent panel
(any other)         concrete           fallback
==================  =================  ===================================================

Sionna evaluates ITU materials at its default frequency (3.5 GHz) while loading a scene;
a material valid at the carrier but not at 3.5 GHz (``floorboard``, fitted from 50 GHz,
the substitute of the tiles) is therefore written as a constant ``radio-material`` with
the ITU permittivity and conductivity at the carrier. The replacements made are returned
(and logged by the channel backend).

This module only edits XML (``xml.etree``); it never imports Sionna.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

#: substitute ITU material per material that has no fit at mmWave
MMWAVE_SUBSTITUTES: dict[str, str] = {
    "brick": "concrete",
    "marble": "concrete",
    "asphalt_concrete": "concrete",
    "very_dry_ground": "concrete",
    "medium_dry_ground": "concrete",
    "wet_ground": "concrete",
    "plywood": "wood",
    "vinyl_tile": "floorboard",
    "carpet_tile": "floorboard",
    "clear_acrylic": "glass",
}
FALLBACK_MATERIAL = "concrete"

#: relative margin kept from the ends of an ITU fitting range
RANGE_MARGIN = 1e-4


ItuTable = dict[str, dict[tuple[float, float], tuple[float, float, float, float]]]


def itu_table() -> ItuTable:
    """Sionna's ITU material table ``{name: {(f_lo, f_hi) [GHz]: (a, b, c, d)}}``."""
    from sionna.rt.radio_materials.itu import ITU_MATERIALS_PROPERTIES  # lazy: heavy

    return ITU_MATERIALS_PROPERTIES


def valid_at(ranges, carrier_hz: float) -> bool:
    """Whether a carrier [Hz] lies safely inside one of the fitting ranges [GHz]."""
    f_ghz = carrier_hz / 1e9
    return any(lo * (1 + RANGE_MARGIN) <= f_ghz <= hi * (1 - RANGE_MARGIN) for lo, hi in ranges)


def itu_properties(table: ItuTable, name: str, carrier_hz: float) -> tuple[float, float]:
    """Relative permittivity and conductivity [S/m] of ITU material ``name`` at a carrier."""
    f_ghz = carrier_hz / 1e9
    for (lo, hi), (a, b, c, d) in table[name].items():
        if lo * (1 + RANGE_MARGIN) <= f_ghz <= hi * (1 - RANGE_MARGIN):
            return a * f_ghz**b, c * f_ghz**d
    raise ValueError(f"ITU material {name!r} is not defined at {carrier_hz:g} Hz")


def substitute_for(name: str, carrier_hz: float, table: ItuTable) -> str:
    """The material to use instead of ITU material ``name`` at ``carrier_hz``."""
    candidates = [MMWAVE_SUBSTITUTES.get(name, FALLBACK_MATERIAL), FALLBACK_MATERIAL, "metal", "vacuum"]
    for candidate in candidates:
        if candidate in table and valid_at(table[candidate], carrier_hz):
            return candidate
    raise ValueError(f"no ITU radio material is valid at carrier_hz={carrier_hz:g}")


def _itu_type(bsdf: ET.Element) -> str | None:
    """ITU material type of a <bsdf> element, or None if it is not an ITU material."""
    type_prop = bsdf.find("string[@name='type']")
    if type_prop is not None and bsdf.attrib.get("type") == "itu-radio-material":
        return type_prop.get("value")
    # Sionna's naming convention: id "mat-itu_<type>" or "itu_<type>" makes an ITU material
    name = bsdf.attrib.get("id") or ""
    if name.startswith("mat-"):
        name = name[4:]
    if name.startswith(("itu_", "itu-")):
        return type_prop.get("value") if type_prop is not None else name[4:]
    return None


def _to_constant_material(bsdf: ET.Element, permittivity: float, conductivity: float) -> None:
    """Turn an ITU <bsdf> into a frequency-independent ``radio-material`` (keeps thickness)."""
    thickness = bsdf.find("float[@name='thickness']")
    bsdf_id = bsdf.attrib.get("id")
    bsdf.clear()
    bsdf.attrib.update({"type": "radio-material", **({"id": bsdf_id} if bsdf_id else {})})
    ET.SubElement(bsdf, "float", {"name": "relative_permittivity", "value": repr(float(permittivity))})
    ET.SubElement(bsdf, "float", {"name": "conductivity", "value": repr(float(conductivity))})
    if thickness is not None:
        bsdf.append(thickness)


def adapt_itu_materials(root: ET.Element, carrier_hz: float, *, load_hz: float = 3.5e9,
                        table: ItuTable | None = None) -> dict[str, str]:
    """Make, in place, every ITU material of a scene usable at ``carrier_hz``.

    A material with no fit at the carrier is replaced by its substitute (module table).
    Sionna evaluates ITU materials at its default frequency ``load_hz`` while loading, so a
    material (or substitute) valid at the carrier but not at ``load_hz`` (e.g.
    ``floorboard``, fitted from 50 GHz) becomes a constant ``radio-material`` with the ITU
    permittivity and conductivity at the carrier.

    Returns:
        ``{bsdf id: "original -> replacement"}`` of the changes made.
    """
    table = itu_table() if table is None else table
    changes: dict[str, str] = {}
    for bsdf in root.findall("./bsdf") + root.findall(".//shape/bsdf"):
        itu_type = _itu_type(bsdf)
        if itu_type is None or itu_type not in table:
            continue
        new_type = itu_type if valid_at(table[itu_type], carrier_hz) else substitute_for(itu_type, carrier_hz, table)
        bsdf_id = bsdf.attrib.get("id", "?")
        if not valid_at(table[new_type], load_hz):
            permittivity, conductivity = itu_properties(table, new_type, carrier_hz)
            _to_constant_material(bsdf, permittivity, conductivity)
            changes[bsdf_id] = (f"{itu_type} -> constant {new_type} at {carrier_hz / 1e9:g} GHz "
                                f"(eps_r={permittivity:.3g}, sigma={conductivity:.3g} S/m)")
        elif new_type != itu_type:
            type_prop = bsdf.find("string[@name='type']")
            if type_prop is None:
                type_prop = ET.SubElement(bsdf, "string", {"name": "type"})
            type_prop.set("value", new_type)
            changes[bsdf_id] = f"{itu_type} -> {new_type}"
    return changes

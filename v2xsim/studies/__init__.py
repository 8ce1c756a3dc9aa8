"""Studies: model ablations evaluated on drops of the world, and co-simulation sweeps.

A study file names its kind in ``study``: "rsu_ablation" (Tables III-IV, Fig. 5 of the
GBA paper), "vehicle_deployment" (GBA-Vehicle, Table V), "realignment" (co-simulations
of a scenario with fixed realignment periods) or "fl_imbalance" (federated training of
GBA-Vehicle under imbalance: Table II and Fig. 6).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from v2xsim.errors import ConfigError

STUDY_KINDS = ("rsu_ablation", "vehicle_deployment", "realignment", "fl_imbalance")


def read_study_file(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """The parsed TOML of a study file with ``--set`` overrides applied."""
    from v2xsim.config import apply_overrides, read_toml

    data = read_toml(path, what="study")
    return apply_overrides(data, overrides or [])


def check_site_sections(path: str | Path, road: dict[str, Any], radio: dict[str, Any]) -> None:
    """A study's ``[road]`` and ``[radio]`` tables follow the scenario schema: refuse a bad
    one at load time, naming the key."""
    from pydantic import ValidationError

    from v2xsim.config import RadioConfig, RoadConfig, format_validation_error

    for key, table, section in (("road", road, RoadConfig), ("radio", radio, RadioConfig)):
        try:
            section.model_validate(table)
        except ValidationError as error:
            raise ConfigError(f"{path}: {key}.{format_validation_error(error)}") from None


def run_study_file(path: str | Path, overrides: list[str] | None, out_dir: Path, *, quiet: bool = False) -> dict[str, Any]:
    """Run the study a file describes (dispatch on its ``study`` key)."""
    data = read_study_file(path, overrides)
    kind = data.get("study", "rsu_ablation")
    if kind == "rsu_ablation":
        from v2xsim.studies.rsu_ablation import load_study, run_study

        return run_study(load_study(path, overrides), out_dir, quiet=quiet)
    if kind == "vehicle_deployment":
        from v2xsim.studies.vehicle_deployment import load_vehicle_study, run_vehicle_study

        return run_vehicle_study(load_vehicle_study(data, Path(path)), out_dir, quiet=quiet)
    if kind == "realignment":
        from v2xsim.studies.realignment import load_realignment_study, run_realignment_study

        study, base = load_realignment_study(data, Path(path))
        return run_realignment_study(study, base, out_dir, quiet=quiet)
    if kind == "fl_imbalance":
        from v2xsim.studies.fl_imbalance import load_fl_study, run_fl_study

        return run_fl_study(load_fl_study(data, Path(path)), out_dir, quiet=quiet)
    raise ConfigError(f"{path}: study: unknown kind {kind!r}; valid: {', '.join(STUDY_KINDS)}")

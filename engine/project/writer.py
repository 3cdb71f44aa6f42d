"""A loaded project -> plain data and TOML (the run folder's project.toml, the trackers' config)."""

from __future__ import annotations

from dataclasses import asdict

from engine.project.schema import Operation, Project


# --- writing -----------------------------------------------------------------

def project_to_dict(project: Project) -> dict:
    """The resolved project as plain data (templates inlined, defaults filled).

    Operations and stages are written out in full (nothing left to inherit) when the
    project declared them; a project that did not is written exactly as before.
    """
    data = asdict(project)
    for key in ("dir", "operations", "stages", "combined"):
        data.pop(key)
    for part in ("teacher", "student"):
        data[part].pop("template_file")
    if project.combined:
        data["operations"] = [_operation_dict(operation) for operation in project.operations]
        data["stages"] = [asdict(stage) for stage in project.stages]
    return data


def _operation_dict(operation: Operation) -> dict:
    data = asdict(operation)
    for part in ("teacher", "student"):
        data[part].pop("template_file")
    return data


def project_to_toml(project: Project) -> str:
    import tomlkit

    return tomlkit.dumps(project_to_dict(project))

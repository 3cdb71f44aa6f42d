"""On-policy distillation on the dashboard (issue 21): which policy a run uses, what its KL curve is, what a step costs.

`distill.policy` is off (the paper's method: the student learns the teacher's
cached answers), on (the student samples, the teacher scores its tokens) or
mixed (a share of each batch on-policy). An on-policy train event carries
`policy`, `sample_s`, `score_s`, `train_s` and `teacher_tokens` besides `loss`
and `kl`, and its `kl` is the divergence being minimized on the student's own
tokens.
"""

from __future__ import annotations

import tomllib
from pathlib import Path


def run_distill(run_dir: Path) -> dict:
    """The `[distill]` table of the run's project.toml ({} when it cannot be read)."""
    try:
        data = tomllib.loads((Path(run_dir) / "project.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("distill") if isinstance(data.get("distill"), dict) else {}


def project_distill(project) -> dict:
    """The same keys from a loaded engine `Project`."""
    distill = getattr(project, "distill", None)
    return {key: getattr(distill, key) for key in ("policy", "divergence", "on_policy_fraction") if hasattr(distill, key)}


def policy_label(distill: dict) -> str:
    """`on-policy (reverse_kl)`, `mixed: 50% on-policy (reverse_kl)`; "" for off, the paper's method."""
    policy = str(distill.get("policy") or "off")
    if policy == "off":
        return ""
    divergence = distill.get("divergence") or "reverse_kl"
    if policy == "mixed":
        share = distill.get("on_policy_fraction", 0.5)
        share = f"{share:.0%}" if isinstance(share, (int, float)) else str(share)
        return f"mixed: {share} on-policy ({divergence})"
    return f"{policy}-policy ({divergence})"


def kl_title(policies) -> str:
    """The KL chart's title: `answer KL` off-policy; `KL · on-policy` where the curve is the on-policy divergence."""
    found = set(policies) - {""}
    names = [name for name in ("off", "mixed", "on") if name in found] + sorted(found - {"off", "mixed", "on"})
    if not names or names == ["off"]:
        return "answer KL"
    return "KL · " + " + ".join(names) + "-policy"


def cost_line(policy: str, step_cost: dict, teacher_tokens: int | None) -> str:
    """`on-policy step: sample 0.41s score 0.12s train 0.30s · teacher 12,345 tok`: what an on-policy step costs."""
    if not step_cost:
        return ""
    parts = [f"{name} {step_cost[key]:.2f}s" for key, name in (("sample_s", "sample"), ("score_s", "score"),
                                                                 ("train_s", "train")) if key in step_cost]
    line = f"{policy}-policy step: " + " ".join(parts)
    if teacher_tokens is not None:
        line += f" · teacher {teacher_tokens:,} tok"
    return line

"""The Results screen's table and sample grid as CSV and JSON files (no Textual here).

Files go to `PROJECT/exports/`, named after the run (and stage and operation of
a combined run), never into the run folder: that folder is the engine's record.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

ROLES = ("teacher", "student_before", "student_after")


def metric_rows(metrics: dict) -> list[dict]:
    """One row per metric: teacher, before, after, and Δ after − before (answer KL included)."""
    names: list[str] = []
    for role in ROLES:
        for name in metrics.get(role) or {}:
            if name not in names:
                names.append(name)
    rows = []
    for name in names:
        values = {role: (metrics.get(role) or {}).get(name) for role in ROLES}
        numeric = all(isinstance(values[role], (int, float)) for role in ("student_before", "student_after"))
        rows.append({"metric": name, **values,
                     "delta_after_minus_before": values["student_after"] - values["student_before"] if numeric else None})
    kl = metrics.get("answer_kl") or {}
    if kl:
        before, after = kl.get("before"), kl.get("after")
        numeric = isinstance(before, (int, float)) and isinstance(after, (int, float))
        rows.append({"metric": "answer_kl", "teacher": None, "student_before": before, "student_after": after,
                     "delta_after_minus_before": after - before if numeric else None})
    return rows


def sample_rows(samples: list[dict]) -> list[dict]:
    """One flat row per sample: input, label, and each model's prompt, output, answer and correctness."""
    rows = []
    for sample in samples:
        raw = sample.get("input")
        row = {"index": sample.get("index"), "stage": sample.get("stage_name"), "operation": sample.get("operation"),
               "input": raw.get("input", json.dumps(raw)) if isinstance(raw, dict) else raw,
               "label": sample.get("label"), "reference": sample.get("reference")}
        for role in ROLES:
            part = sample.get(role) or {}
            for key in ("prompt", "output", "answer", "correct"):
                row[f"{role}_{key}"] = part.get(key)
        kl = sample.get("answer_kl")
        if isinstance(kl, dict):  # two number columns, not a JSON object in one cell (issue 20 item 14)
            row.update({f"answer_kl_{when}": value for when, value in kl.items()})
        elif kl is not None:
            row["answer_kl"] = kl
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def export_results(project_dir: Path, run_name: str, metrics: dict, samples: list[dict],
                   scope: str = "") -> list[Path]:
    """Write `<run>[-scope]-metrics.{csv,json}` and `-samples.{csv,json}`; returns the paths written."""
    folder = Path(project_dir) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    stem = run_name + (f"-{scope}" if scope else "")
    written = []
    for what, rows, raw in (("metrics", metric_rows(metrics), metrics), ("samples", sample_rows(samples), samples)):
        csv_path, json_path = folder / f"{stem}-{what}.csv", folder / f"{stem}-{what}.json"
        write_csv(csv_path, rows)
        json_path.write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written += [csv_path, json_path]
    return written

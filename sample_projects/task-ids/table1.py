"""The paper's Table 1 from a task-ids run: `python sample_projects/task-ids/table1.py RUN_DIR`.

Correct association: prompted with a task's new id, accuracy on that task's own
inputs (the `correct-*` probes). Wrong association: prompted with a task's id,
how often the student still does the task the input belongs to (the `wrong-*`
probes; lower is better). Means over the four tasks: the probes use the new
(shuffled) ids, so "after stage 1" shows the old association getting in the way.
"""

import json
import sys
from pathlib import Path


ROWS = (("teacher", "shuffle", "teacher"), ("base model", "associate", "student_before"),
        ("after stage 1", "shuffle", "student_before"), ("after stage 2", "shuffle", "student_after"))


def table(run_dir: Path) -> str:
    stages = json.loads((run_dir / "metrics.json").read_text())["stages"]
    lines = [f"{'':<16}{'correct':>10}{'wrong':>10}"]
    for label, stage, role in ROWS:
        probes = stages[stage]["operations"]
        means = [sum(figures[role]["accuracy"] for name, figures in probes.items() if name.startswith(kind)) / 4
                 for kind in ("correct-", "wrong-")]
        lines.append(f"{label:<16}{means[0]:>10.2f}{means[1]:>10.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1])))

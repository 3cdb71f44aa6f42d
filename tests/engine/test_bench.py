"""The bench (issue 9, item 7) runs end to end at tiny sizes; its figures are not checked here,
only that each is printed and is a finite number (timings are the bench's business, not a test's)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

# bench/ is a top-level folder, not an installed package: import it from the checkout.
REPOSITORY = str(Path(__file__).resolve().parents[2])
if REPOSITORY not in sys.path:
    sys.path.insert(0, REPOSITORY)


def test_the_bench_runs_at_tiny_sizes(tmp_path, capsys):
    import json

    from bench.__main__ import main

    results = main(["--tiny", "--threads", "1", "--json", str(tmp_path / "bench.json")])
    printed = capsys.readouterr().out
    for letter in "abcdefgh":
        assert f"({letter})" in printed
    assert results["a"]["identical_tokens"] is True
    assert math.isfinite(results["a"]["prefix_reused_vs_no_prefix"])
    assert results["b"]["linear_per_token_growth"] > 0
    assert set(results["c"]["peak_mb"]) == {"full_logits", "answer_only", "answer_chunked", "plain_cross_entropy"}
    assert 0 < results["d"]["sampled_vs_dense"] < 1
    assert 0 < results["e"]["mfu"]
    assert all(row["speedup"] > 0 for row in results["f"]["draw"].values())
    assert set(results["f"]["pass"]) == {1, 4}
    assert results["g"]["encode"]["identical_cache"] is True
    kv = results["g"]["kv_per_row"]
    assert kv["prefix_bytes_per_row_measured"] == kv["prefix_bytes_per_row_formula"]
    assert kv["llama3_8b"]["prefix_bytes_per_row"] == 262_144_000
    assert results["h"]["max_batch_tokens"]["padding_tokens"] <= results["h"]["rows_only"]["padding_tokens"]
    assert json.loads((tmp_path / "bench.json").read_text())["machine"]["threads"] == 1

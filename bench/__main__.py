"""`python -m bench`: print the issue-9 and issue-17 figures as ratios measured side by side (see bench/README.md).

    python -m bench                 # default sizes: a few minutes on 2 cores
    python -m bench --tiny          # seconds (what the tests run)
    python -m bench --only a,b --json out.json --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FIGURES = {"a": "teacher_pass", "b": "alignment", "c": "distillation_step", "d": "label_bytes", "e": "training_throughput",
           "f": "teacher_labels", "g": "shared_prefix", "h": "token_batching"}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (seconds): checks that the bench runs")
    parser.add_argument("--only", default=",".join(FIGURES), help="figures to run, e.g. a,c")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per variant (median); default 3, tiny 1")
    parser.add_argument("--threads", type=int, default=None, help="torch threads; default engine.threads' choice")
    parser.add_argument("--json", default=None, help="also write every number to this JSON file")
    return parser.parse_args(argv)


def machine(threads: int) -> dict:
    import torch
    import transformers

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?") \
        if os.path.exists("/proc/cpuinfo") else platform.processor()
    return {"cpu": cpu, "cpus": os.cpu_count(), "threads": threads, "load_average": os.getloadavg()[0],
            "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()}


def main(argv=None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from dataclasses import asdict, replace

    from bench import figures
    from bench.report import print_report
    from engine.threads import configure_threads

    sizes = figures.Sizes.tiny() if args.tiny else figures.Sizes()
    if args.repeats:
        sizes = replace(sizes, repeats=args.repeats)
    threads = configure_threads(args.threads)
    results = {"machine": machine(threads), "sizes": asdict(sizes)}
    for letter in args.only.split(","):
        started = time.perf_counter()
        results[letter] = getattr(figures, FIGURES[letter.strip()])(sizes)
        results[letter]["bench_seconds"] = time.perf_counter() - started
        print_report(letter, results[letter], sizes)
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2, default=str)
    return results


if __name__ == "__main__":
    main()

"""Performance harness for the engine (issue 9): `python -m bench` prints figures, not pass/fail.

Every figure is a ratio of two ways of doing the same work, measured side by side in
one process (variants interleaved, median of repeats), on Llama-shaped models with
random weights at stated sizes. Peak memory is measured in a fresh process per variant.
"""

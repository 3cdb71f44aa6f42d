"""The project's own functions: `inputs.filter` keeps the rows that are real user messages.

Replace questions.jsonl with your users' messages (one JSON object per line, the
message under "question"), or point `inputs.dataset` at your data.
"""


def is_question(row) -> bool:
    """Called with each row (after `inputs.columns`); False drops it."""
    return bool(row["input"].strip())

"""`inputs.source = "datasets"` from every place a user keeps data (issue 23), each on data built here.

Hub ids are simulated offline: a dataset written into a temporary datasets cache (the layout
`load_dataset` leaves behind) or a snapshot in a temporary hub cache (what `hf download` leaves).
Every failure is one line that names the key.
"""

from __future__ import annotations

import json
import os

import pytest

from engine.errors import ConfigError, EngineError
from engine.project.loader import project_from_toml_text
from engine.project.sources import load_inputs, sample_inputs

BASE = '''
[inputs]
source = "datasets"
{inputs}
count = {count}
seed = {seed}

[teacher]
template = "T {{{{ input }}}}"

[student]
template = "{{{{ input }}}}"

[distill]
max_steps = 1

[eval]
count = {eval_count}
{eval}
'''

ROWS = [{"question": f"q{i}", "answer": f"a{i}", "topic": "odd" if i % 2 else "even"} for i in range(12)]
TEST_ROWS = [{"question": f"t{i}", "answer": f"b{i}", "topic": "even"} for i in range(4)]


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    """Empty hub and datasets caches of the test's own: nothing is read from, or written to, the user's."""
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    return tmp_path


def project(folder, inputs: str, count=6, eval_count=3, seed=0, eval=""):
    folder.mkdir(exist_ok=True)
    return project_from_toml_text(folder, BASE.format(inputs=inputs, count=count, eval_count=eval_count, seed=seed,
                                                      eval=eval))


def jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def one_line_error(call, *fragments):
    with pytest.raises(EngineError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def inputs_of(rows):
    return {row["input"] for row in rows}


COLUMNS = 'columns = { input = "question", label = "answer" }'


# --- the forms ------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_a_single_data_file_of_each_format(tmp_path, suffix):
    import datasets

    data = tmp_path / "data" / f"pool{suffix}"
    data.parent.mkdir()
    frame = datasets.Dataset.from_list(ROWS)
    {".jsonl": lambda: frame.to_json(data), ".json": lambda: data.write_text(json.dumps(ROWS)),
     ".csv": lambda: frame.to_csv(data, index=False), ".parquet": lambda: frame.to_parquet(data)}[suffix]()
    distill, held_out = load_inputs(project(tmp_path / "p", f'dataset = "../data/pool{suffix}"\n{COLUMNS}'))
    assert len(distill) == 6 and len(held_out) == 3
    assert not inputs_of(distill) & inputs_of(held_out)
    assert all(row["label"] == "a" + row["input"][1:] and row["topic"] in ("odd", "even") for row in distill + held_out)


def test_a_folder_of_data_files_with_named_splits(tmp_path):
    jsonl(tmp_path / "p" / "data" / "train.jsonl", ROWS)
    jsonl(tmp_path / "p" / "data" / "test.jsonl", TEST_ROWS)
    distill, _ = load_inputs(project(tmp_path / "p", f'dataset = "data"\n{COLUMNS}'))
    assert inputs_of(distill) <= {row["question"] for row in ROWS}
    test_only = project(tmp_path / "p", f'dataset = "data"\nsplit = "test"\n{COLUMNS}', count=2, eval_count=2)
    assert inputs_of(sum(load_inputs(test_only), [])) == {row["question"] for row in TEST_ROWS}


def test_a_save_to_disk_folder_dict_and_plain(tmp_path):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS),
                          "test": datasets.Dataset.from_list(TEST_ROWS)}).save_to_disk(str(tmp_path / "saved"))
    distill, held_out = load_inputs(project(tmp_path / "p", f'dataset = "{tmp_path / "saved"}"\n{COLUMNS}'))
    assert inputs_of(distill + held_out) <= {row["question"] for row in ROWS}
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "plain"))
    assert len(load_inputs(project(tmp_path / "p", f'dataset = "{tmp_path / "plain"}"\n{COLUMNS}'))[0]) == 6


def cache_hub_dataset(cache, repo_id: str, config: str, splits: dict[str, list[dict]]) -> None:
    """Write `repo_id` into a datasets cache as `load_dataset` leaves it after a download."""
    import datasets
    from datasets.arrow_writer import ArrowWriter

    namespace, name = repo_id.split("/")
    folder = os.path.join(cache, f"{namespace}___{name}", config, "0.0.0", "0123456789abcdef")
    os.makedirs(folder)
    info = datasets.DatasetInfo(dataset_name=name, config_name=config, splits=datasets.SplitDict())
    for split, rows in splits.items():
        table = datasets.Dataset.from_list(rows)
        with ArrowWriter(path=os.path.join(folder, f"{name}-{split}.arrow")) as writer:
            writer.write_table(table.data.table)
            count, size = writer.finalize()
        info.splits.add(datasets.SplitInfo(name=split, num_examples=count, num_bytes=size, dataset_name=name))
        info.features = table.features
    info.write_to_directory(folder)


def test_a_hub_id_from_the_datasets_cache_with_config_and_split(tmp_path):
    import datasets.config

    cache_hub_dataset(datasets.config.HF_DATASETS_CACHE, "someone/tiny-qa", "plain", {"train": ROWS, "test": TEST_ROWS})
    hub = f'dataset = "someone/tiny-qa"\ndataset_config = "plain"\n{COLUMNS}'
    distill, held_out = load_inputs(project(tmp_path / "p", hub))
    assert inputs_of(distill + held_out) <= {row["question"] for row in ROWS}
    test_split = project(tmp_path / "p", hub + '\nsplit = "test"', count=2, eval_count=2)
    assert inputs_of(sum(load_inputs(test_split), [])) == {row["question"] for row in TEST_ROWS}
    one_line_error(lambda: load_inputs(project(tmp_path / "p", hub.replace('"plain"', '"other"'))),
                   "`inputs.dataset_config` = 'other'", "plain")


def test_a_hub_id_from_a_hub_cache_snapshot(tmp_path):
    from huggingface_hub import constants

    repo = os.path.join(constants.HF_HUB_CACHE, "datasets--someone--snap")
    jsonl(tmp_path / repo / "snapshots" / "abc123" / "train.jsonl", ROWS)
    os.makedirs(os.path.join(repo, "refs"))
    with open(os.path.join(repo, "refs", "main"), "w") as ref:
        ref.write("abc123")
    assert len(load_inputs(project(tmp_path / "p", f'dataset = "someone/snap"\n{COLUMNS}'))[0]) == 6


def test_columns_filter_and_a_seeded_sample(tmp_path):
    jsonl(tmp_path / "p" / "pool.jsonl", ROWS)
    (tmp_path / "p" / "keep.py").write_text("def even(row):\n    return row['topic'] == 'even'\n"
                                            "def bad(row):\n    return 'yes'\n")
    config = f'dataset = "pool.jsonl"\n{COLUMNS}\nfilter = "keep:even"'
    distill, held_out = load_inputs(project(tmp_path / "p", config, count=4, eval_count=2))
    assert inputs_of(distill + held_out) == {row["question"] for row in ROWS if row["topic"] == "even"}
    assert all(row["label"] == "a" + row["input"][1:] for row in distill)  # columns renamed to the template's names
    one_line_error(lambda: load_inputs(project(tmp_path / "p", config, count=4, eval_count=3)), "only 6 unique")
    one_line_error(lambda: load_inputs(project(tmp_path / "p", config.replace("keep:even", "keep:bad"))),
                   "`inputs.filter` = 'keep:bad' returned 'yes' (str)", "expected true or false")
    # A seeded sample: the same seed draws the same rows, another seed others.
    sample = f'dataset = "pool.jsonl"\n{COLUMNS}'
    first = load_inputs(project(tmp_path / "p", sample, count=3, eval_count=1))
    assert first == load_inputs(project(tmp_path / "p", sample, count=3, eval_count=1))
    assert first != load_inputs(project(tmp_path / "p", sample, count=3, eval_count=1, seed=5))


def test_eval_split_scores_the_users_own_test_set(tmp_path):
    overlap = ROWS[:1]  # an input in both splits is held out, never distilled on
    jsonl(tmp_path / "p" / "data" / "train.jsonl", ROWS)
    jsonl(tmp_path / "p" / "data" / "test.jsonl", TEST_ROWS + overlap)
    config = f'dataset = "data"\n{COLUMNS}'
    distill, held_out = load_inputs(project(tmp_path / "p", config, count=11, eval_count=5, eval='split = "test"'))
    assert inputs_of(held_out) == {row["question"] for row in TEST_ROWS + overlap}
    assert len(distill) == 11 and not inputs_of(distill) & inputs_of(held_out)
    previews = sample_inputs(project(tmp_path / "p", config, eval='split = "test"'), 2)
    assert inputs_of(previews) <= inputs_of(held_out)
    one_line_error(lambda: load_inputs(project(tmp_path / "p", config, count=12, eval_count=5, eval='split = "test"')),
                   "`inputs.split` = 'train' gave only 11 unique inputs that are not in `eval.split` = 'test'")
    one_line_error(lambda: load_inputs(project(tmp_path / "p", config, eval_count=6, eval='split = "test"')),
                   "`eval.split` = 'test' gave only 5 unique inputs", "`eval.count` = 6")


# --- the failures: one line, naming the key ----------------------------------------

def test_each_failure_is_one_line_naming_the_key(tmp_path):
    folder = tmp_path / "p"
    jsonl(folder / "pool.jsonl", ROWS)
    jsonl(folder / "data" / "train.jsonl", ROWS)
    (folder / "data" / "test.jsonl").write_text("")
    one_line_error(lambda: load_inputs(project(folder, 'dataset = "missing.jsonl"')),
                   "`inputs.dataset` = 'missing.jsonl': no such file or folder")
    one_line_error(lambda: load_inputs(project(folder, 'dataset = "pool.jsonl"')),
                   "`inputs.input_field` = 'input': not a column (columns: question, answer, topic)")
    one_line_error(lambda: load_inputs(project(folder, 'dataset = "pool.jsonl"\ncolumns = { input = "query" }')),
                   "`inputs.columns.input` = 'query': not a column")
    one_line_error(lambda: load_inputs(project(folder, f'dataset = "pool.jsonl"\n{COLUMNS}\nsplit = "test"')),
                   "`inputs.split` = 'test'", "a single file")
    one_line_error(lambda: load_inputs(project(folder, f'dataset = "data"\n{COLUMNS}\nsplit = "validation"')),
                   "`inputs.split` = 'validation': no such split", "splits: train")
    one_line_error(lambda: load_inputs(project(folder, f'dataset = "data"\n{COLUMNS}', eval='split = "test"')),
                   "`eval.split` = 'test'")
    one_line_error(lambda: load_inputs(project(folder, 'dataset = "someone/not-cached"')),
                   "`inputs.dataset` = 'someone/not-cached': not a file or folder here, and not in the local cache",
                   "hf download --repo-type dataset someone/not-cached")
    (folder / "notes.txt").write_text("x")
    one_line_error(lambda: load_inputs(project(folder, 'dataset = "notes.txt"')), "`inputs.dataset` = 'notes.txt'",
                   ".parquet")


def test_an_empty_split_is_named(tmp_path):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS),
                          "test": datasets.Dataset.from_list(TEST_ROWS).select([])}).save_to_disk(str(tmp_path / "saved"))
    one_line_error(lambda: load_inputs(project(tmp_path / "p", f'dataset = "{tmp_path / "saved"}"\n{COLUMNS}',
                                               eval='split = "test"')),
                   "`eval.split` = 'test': the split", "is empty (0 rows)")


def test_the_new_keys_are_validated_where_they_are_written(tmp_path):
    (tmp_path / "tasks.py").write_text("def gen(rng, n):\n    return [str(i) for i in range(n)]\n")
    with pytest.raises(ConfigError) as raised:
        project_from_toml_text(tmp_path, BASE.format(
            inputs='columns = { input = 3 }\nfilter = "no colon"', count=2, eval_count=1, seed=0,
            eval='split = "train"').replace('source = "datasets"', 'source = "file"\npath = "x.jsonl"'))
    problems = "\n".join(raised.value.problems)
    assert "`inputs.columns.input` = 3: expected a column name" in problems
    assert "`inputs.filter`" in problems
    assert "`eval.split` = 'train' needs `inputs.source` = 'datasets'" in problems
    with pytest.raises(ConfigError, match="`inputs.filter` is set, but `inputs.source` = 'python'"):
        project_from_toml_text(tmp_path, BASE.format(inputs='filter = "tasks:gen"', count=2, eval_count=1, seed=0,
                                                     eval="").replace('source = "datasets"',
                                                                      'source = "python"\nfunction = "tasks:gen"'))
    with pytest.raises(ConfigError, match="`eval.split` = 'train' is `inputs.split` too"):
        project(tmp_path, 'dataset = "d"', eval='split = "train"')

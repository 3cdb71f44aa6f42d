"""`inputs.source = "datasets"`: one split of data from wherever a user keeps it, through `datasets`' own loaders.

`inputs.dataset` names, in this order of lookup (issue 23):

- a file here (relative to the project folder): `.jsonl`/`.json`, `.csv` or `.parquet`, read by
  the packaged builder of that format; a single file has one split, `train`;
- a folder written by `save_to_disk` (it holds `dataset_dict.json` or `state.json`): `load_from_disk`;
- any other folder: `load_dataset(folder)`, which finds its data files and their splits by name;
- a hub id, read from the local cache only: a snapshot in the hub cache (`hf download --repo-type
  dataset ID`), else a dataset `load_dataset` prepared once in the datasets cache. Like the
  models, the engine never downloads, so it never waits on a network.

Every failure is one `EngineError` line naming the key (`inputs.dataset`, `inputs.split` or
`eval.split`) and what was found.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from engine.errors import EngineError

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
SAVED_MARKERS = ("dataset_dict.json", "state.json")  # what `save_to_disk` writes


def load_split(project_dir: Path, config, split: str, split_key: str):
    """The `datasets.Dataset` of `split` (named by `split_key` in errors) from `config.dataset`."""
    import datasets

    datasets.logging.set_verbosity_error()  # "Using the latest cached version..." is not news to a user who chose it
    name = config.dataset
    local = project_dir / Path(name).expanduser()  # an absolute or ~ path stays itself
    if local.is_file():
        return _single_file(local, config, split, split_key)
    if local.is_dir():
        if any((local / marker).exists() for marker in SAVED_MARKERS):
            return _from_disk(local, config, split, split_key)
        return _load(str(local), config, split, split_key)
    if _looks_like_a_path(name):
        raise EngineError(f"`inputs.dataset` = {name!r}: no such file or folder ({local})")
    return _from_hub_cache(name, config, split, split_key)


def _single_file(path: Path, config, split: str, split_key: str):
    builder = FORMATS.get(path.suffix.lower())
    if builder is None:
        raise EngineError(f"`inputs.dataset` = {config.dataset!r}: a {path.suffix or 'suffix-less'} file; expected "
                          f"a {', '.join(FORMATS)} file, a folder, or a hub id")
    if split != "train":
        raise EngineError(f"`{split_key}` = {split!r}: `inputs.dataset` = {config.dataset!r} is a single file, "
                          "whose one split is 'train'; name a folder of split files (train.jsonl, test.jsonl) instead")
    return _load(builder, config, split, split_key, data_files={"train": str(path)})


def _from_disk(folder: Path, config, split: str, split_key: str):
    """One split of a `save_to_disk` folder: a DatasetDict's named split, or a plain Dataset as `train`.

    The split list is read from `dataset_dict.json` and each split loaded alone, so an
    empty split (which `load_from_disk` cannot read) or a missing one is named as such.
    """
    import datasets

    name = config.dataset
    if (folder / "dataset_dict.json").exists():
        found = json.loads((folder / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
        if split not in found:
            raise EngineError(f"`{split_key}` = {split!r}: no such split in `inputs.dataset` = {name!r} "
                              f"(splits: {', '.join(found) or 'none'})")
        folder = folder / split
        if not json.loads((folder / "state.json").read_text(encoding="utf-8")).get("_data_files"):
            raise EngineError(f"`{split_key}` = {split!r}: the split of `inputs.dataset` = {name!r} is empty (0 rows)")
    elif split != "train":
        raise EngineError(f"`{split_key}` = {split!r}: `inputs.dataset` = {name!r} holds one dataset without "
                          "splits (read as 'train'); save a DatasetDict to have named splits")
    try:
        dataset = datasets.load_from_disk(str(folder))
    except Exception as error:
        raise EngineError(f"`inputs.dataset` = {name!r}: a `save_to_disk` folder that could not be read "
                          f"({type(error).__name__}: {_first_line(error)})") from None
    if len(dataset) == 0:
        raise EngineError(f"`{split_key}` = {split!r}: the split of `inputs.dataset` = {name!r} is empty (0 rows)")
    return dataset


def _from_hub_cache(name: str, config, split: str, split_key: str):
    """A hub id from the hub cache's snapshot, else from the datasets cache; never from the network."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(name, repo_type="dataset", cache_dir=constants.HF_HUB_CACHE, local_files_only=True)
    except HFValidationError:
        raise EngineError(f"`inputs.dataset` = {name!r}: not a file or folder here, and not a hub id "
                          "(expected `org/name`)") from None
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        folder = None
    if folder is not None:
        return _load(folder, config, split, split_key)
    import datasets

    with _offline(datasets):
        try:
            builder = datasets.load_dataset_builder(name, config.dataset_config or None)
        except Exception as error:
            found = " ".join(line.strip() for line in str(error).splitlines())  # keeps "Available configs: [...]"
        else:
            return _prepared_split(builder, config, split, split_key)
    if "Couldn't find cache" in found and config.dataset_config:
        raise EngineError(f"`inputs.dataset_config` = {config.dataset_config!r}: not in the local cache of "
                          f"{name!r} ({found})")
    import datasets.config as datasets_config

    raise EngineError(f"`inputs.dataset` = {name!r}: not a file or folder here, and not in the local cache "
                      f"(HF_HUB_CACHE={constants.HF_HUB_CACHE}, HF_DATASETS_CACHE={datasets_config.HF_DATASETS_CACHE}); "
                      f"fetch it once with `hf download --repo-type dataset {name}` (the engine never downloads)")


@contextlib.contextmanager
def _offline(datasets):
    """`datasets` in offline mode for one call: a cached hub id is read, an uncached one fails at once."""
    saved = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = saved


def _load(path: str, config, split: str, split_key: str, **kwargs):
    """One split through the builder `load_dataset` would use (a folder's, or a format's for `data_files`)."""
    import datasets

    try:
        with _offline(datasets):
            builder = datasets.load_dataset_builder(path, config.dataset_config or None, **kwargs)
    except Exception as error:
        raise _unreadable(config, error) from None
    return _prepared_split(builder, config, split, split_key)


def _prepared_split(builder, config, split: str, split_key: str):
    """Prepare the builder's splits (a no-op for a cached hub id), then read one, checked to exist and hold rows.

    The split is named before reading, so a missing or empty one is its own clear error,
    not `datasets`' "Instruction 'test' corresponds to no data".
    """
    import datasets

    try:
        with _offline(datasets):
            builder.download_and_prepare()
    except Exception as error:
        raise _unreadable(config, error) from None
    found = builder.info.splits or {}
    if split not in found:
        raise EngineError(f"`{split_key}` = {split!r}: no such split in `inputs.dataset` = {config.dataset!r} "
                          f"(splits: {', '.join(found) or 'none'})")
    if not found[split].num_examples:
        raise EngineError(f"`{split_key}` = {split!r}: the split of `inputs.dataset` = {config.dataset!r} is empty (0 rows)")
    return builder.as_dataset(split=split)


def _unreadable(config, error: BaseException) -> EngineError:
    return EngineError(f"`inputs.dataset` = {config.dataset!r}: could not be read by `datasets.load_dataset` "
                       f"({type(error).__name__}: {_first_line(error)})")


def _looks_like_a_path(name: str) -> bool:
    """`./d`, `/d`, `~/d`, `d/x.jsonl`, `a/b/c`: meant as a path, so never looked up as a hub id."""
    return (name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
            or Path(name).suffix.lower() in FORMATS)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__

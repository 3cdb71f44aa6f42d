"""A student or checkpoint folder without its weights is never taken for a trained student (issue 19, item 6).

A copy cut short or an old run can leave `config.json` alone: `--resume` would skip
training and then fail to load it.
"""

from __future__ import annotations

import json

from engine.runs.layout import is_saved_model


def test_a_model_folder_counts_only_with_its_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert not is_saved_model(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    assert is_saved_model(tmp_path)


def test_sharded_weights_count_only_with_every_shard(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    shards = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": shards}))
    (tmp_path / shards["a"]).write_bytes(b"half")
    assert not is_saved_model(tmp_path)
    (tmp_path / shards["b"]).write_bytes(b"half")
    assert is_saved_model(tmp_path)


def test_a_lora_adapter_counts_only_with_its_weights(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    assert not is_saved_model(tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(b"adapter")
    assert is_saved_model(tmp_path)

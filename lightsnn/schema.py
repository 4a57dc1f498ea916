"""The workflow's config schema, generated from the registries and option dataclasses.

``python -m lightsnn schema`` writes workflow/schemas/config.schema.yaml; a test
checks the committed file equals this output, so the allowed methods, datasets,
ops and every default have one source.
"""
from __future__ import annotations

from dataclasses import MISSING, fields

from lightsnn.data import DATASET_NAMES, DataOptions
from lightsnn.pipeline.config import DEVICE_PATTERN, MAX_SEED, NAME_PATTERN, RESULTS_PATTERN
from lightsnn.search import COMPAT_FLAGS, METHODS
from lightsnn.space.network import NetConfig
from lightsnn.space.neurons import LIFConfig
from lightsnn.space.ops import OPS, SPACES
from lightsnn.studies.bench import BenchOptions
from lightsnn.studies.evidence import EvidenceOptions
from lightsnn.training.metrics import EvaluateOptions
from lightsnn.training.train import TrainOptions


def _type_of(value, name: str = "") -> dict:
    if name == "space":
        return {"oneOf": [{"type": "string", "enum": list(SPACES)},
                          {"type": "array", "items": {"type": "string"}, "minItems": 2}]}
    if name == "reference_compat":
        return {"oneOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string",
                                                                          "enum": list(COMPAT_FLAGS)}}]}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, dict):
        return {"type": "object"}
    return {"type": ["number", "null"]}


def _dataclass_schema(cls) -> dict:
    """A JSON schema of an options dataclass: types from defaults, help and choices from the fields' metadata."""
    props = {}
    for f in fields(cls):
        if f.name == "lif":
            continue
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        prop = _type_of(default, f.name)
        prop["description"] = f.metadata.get("help") or f.name
        allowed = f.metadata.get("choices")
        if allowed:
            prop["enum"] = list(allowed)
        if isinstance(default, list):
            default = list(default)
        prop["default"] = default
        props[f.name] = prop
    return {"type": "object", "additionalProperties": False, "properties": props}


def network_schema() -> dict:
    schema = _dataclass_schema(NetConfig)
    for prop in schema["properties"].values():
        prop.pop("default", None)  # defaults come from the dataset's preset
    for name in ("in_channels", "image_size", "num_classes", "channels", "timesteps", "second_pool",
                 "classifier_width", "num_cluster"):
        schema["properties"][name]["minimum"] = 1
    lif = _dataclass_schema(LIFConfig)
    for prop in lif["properties"].values():
        prop.pop("default", None)
    schema["properties"]["lif"] = {**lif, "description": "LIF neuron: tau, v_threshold, v_reset, detach_reset"}
    schema["description"] = "overrides of the dataset's network preset"
    return schema


def evaluate_schema() -> dict:
    schema = _dataclass_schema(EvaluateOptions)
    for f in fields(EvaluateOptions):
        for key, word in (("min", "minimum"), ("max", "maximum")):
            if key in f.metadata:
                schema["properties"][f.name][word] = f.metadata[key]
    return schema


def evidence_schema() -> dict:
    from lightsnn.search.lightsnn import LightSNNOptions

    schema = _dataclass_schema(EvidenceOptions)
    props = schema["properties"]

    def names(key: str, allowed: list, min_items: int = 1) -> None:
        props[key].update(type="array", items={"type": "string", "enum": allowed}, uniqueItems=True,
                          minItems=min_items)

    names("datasets", list(DATASET_NAMES))
    names("methods", list(METHODS))
    names("ablation", list(LightSNNOptions.compat_flags), 0)
    props["space"]["enum"] = list(SPACES)
    props["baseline"]["enum"] = list(METHODS)
    props["seeds"].update(type="array", items={"type": "integer", "minimum": 0, "maximum": MAX_SEED},
                          uniqueItems=True, minItems=2)
    props["other_batch_sizes"].update(type="array", items={"type": "integer", "minimum": 2}, uniqueItems=True)
    for key in ("num_archs", "weight_seeds", "batch_size", "repeat", "train_epochs", "bootstrap"):
        props[key]["minimum"] = 1
    props["retrain_archs"]["minimum"] = 0
    props["num_archs"]["minimum"] = 3
    props["weight_seeds"]["minimum"] = 2
    props["batch_size"]["minimum"] = 2
    schema["default"] = {}
    schema["description"] = "the evidence study: 'snakemake evidence' and 'python -m lightsnn correlate'"
    return schema


def _variant_options_by_method(search: dict) -> list[dict]:
    """A variant's options must be options of its own method: one if/then per method, without defaults
    (Snakemake's validation fills defaults in, and a variant should pass only what it changes)."""
    import copy

    rules = []
    for name, method_schema in search.items():
        options = copy.deepcopy(method_schema)
        options.pop("description", None)
        for prop in options["properties"].values():
            prop.pop("default", None)
        rules.append({"if": {"properties": {"method": {"const": name}}, "required": ["method"]},
                      "then": {"properties": {"options": options}}})
    return rules


def config_schema() -> dict:
    search = {}
    for method in METHODS.values():
        s = _dataclass_schema(method.options)
        s["description"] = method.description
        search[method.name] = s
    train = _dataclass_schema(TrainOptions)
    for prop in train["properties"].values():
        prop.pop("default", None)  # the recipe supplies defaults
    runs_item = {"type": "string"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": "lightsnn workflow configuration (generated by 'python -m lightsnn schema'; do not edit)",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": NAME_PATTERN, "default": "default",
                     "description": "name of the run set: MLflow experiment and results/<name>/"},
            "device": {"type": "string", "pattern": DEVICE_PATTERN, "default": "auto",
                       "description": "auto (CUDA when present), cpu, cuda or cuda:N"},
            "workflow": {
                "type": "object", "additionalProperties": False, "default": {},
                "description": "what the pipeline runs",
                "properties": {
                    "datasets": {"type": "array", "minItems": 1, "uniqueItems": True, "default": ["digits"],
                                 "items": {"type": "string", "enum": list(DATASET_NAMES)},
                                 "description": "datasets of table 2"},
                    "methods": {"type": "array", "minItems": 1, "uniqueItems": True,
                                "default": list(METHODS), "items": {"type": "string", "enum": list(METHODS)},
                                "description": "search methods of table 2"},
                    "seeds": {"type": "array", "minItems": 1, "uniqueItems": True, "default": [0, 1],
                              "items": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
                              "description": "seeds per run"},
                    "variants": {"type": "object", "default": {}, "description":
                                 "extra runs: name -> a method with option overrides (e.g. LightSNN on 5 ops)",
                                 "propertyNames": {"pattern": "^[a-z0-9]+(-[a-z0-9]+)*$", "not": {"enum": list(METHODS)}},
                                 "additionalProperties": {
                                     "type": "object", "additionalProperties": False, "required": ["method"],
                                     "properties": {"method": {"type": "string", "enum": list(METHODS)},
                                                    "options": {"type": "object", "default": {}}},
                                     "allOf": _variant_options_by_method(search)}},
                    "table1": {"oneOf": [{"type": "null"}, {
                        "type": "object", "additionalProperties": False,
                        "required": ["dataset", "random", "pruning"],
                        "properties": {"dataset": {"type": "string", "enum": list(DATASET_NAMES)},
                                       "random": runs_item, "pruning": runs_item}}],
                               "default": None,
                               "description": "random search vs pruning on one dataset (paper's table 1)"},
                    "results": {"type": "string", "pattern": RESULTS_PATTERN, "default": "results",
                                "description": "output folder (letters, digits, spaces and _ . , + = @ : / -)"},
                },
            },
            "network": network_schema(),
            "networks": {"type": "object", "default": {}, "description": "network overrides per dataset",
                         "propertyNames": {"enum": list(DATASET_NAMES)}, "additionalProperties": network_schema()},
            "data": _dataclass_schema(DataOptions),
            "search": {"type": "object", "additionalProperties": False, "default": {},
                       "description": "options per method", "properties": search},
            "train": {**train, "description": "training recipe and overrides"},
            "evaluate": {**evaluate_schema(), "default": {}},
            "bench": {**_dataclass_schema(BenchOptions), "description": "sizes of 'python -m lightsnn bench'"},
            "evidence": evidence_schema(),
            "tracking": {"type": "object", "additionalProperties": False, "default": {}, "properties": {
                "uri": {"type": ["string", "null"], "default": None,
                        "description": "MLflow tracking URI (default sqlite:///results/mlflow.db)"},
                "enabled": {"type": "boolean", "default": True, "description": "log runs to MLflow"},
                "required": {"type": "boolean", "default": False,
                             "description": "a tracking failure fails the job (default: one warning line)"}}},
        },
        "$defs": {"ops": {"enum": list(OPS), "description": "registered op names"}},
    }


def schema_yaml() -> str:
    import yaml

    header = "# Generated by 'python -m lightsnn schema' from the library's registries. Do not edit.\n"
    return header + yaml.safe_dump(config_schema(), sort_keys=False, width=110)


def check_config_files(paths: list[str]) -> None:
    """Merge config files in order and validate them against the schema; one-line ValueError otherwise."""
    import jsonschema

    from lightsnn.pipeline.config import load_config

    merged = load_config(list(paths))  # YAML errors name the file, line and column
    errors = sorted(jsonschema.Draft202012Validator(config_schema()).iter_errors(merged), key=lambda e: e.path)
    if errors:
        error = errors[0]
        where = ".".join(str(p) for p in error.absolute_path) or "the top level"
        raise ValueError(f"{' + '.join(paths)}: at {where}: {error.message}")

"""The workflow's config schema, generated from the registries and option dataclasses.

``python -m lightsnn schema`` writes workflow/schemas/config.schema.yaml; a test
checks the committed file equals this output, so the allowed methods, datasets,
ops and every default have one source.
"""
from __future__ import annotations

import copy
import re
import types
import typing
from dataclasses import fields

from lightsnn.core.names import old_names
from lightsnn.core.options import field_default
from lightsnn.data import DATASET_NAMES, DATASETS, DataOptions
from lightsnn.nasbench.benchmark_options import BenchmarkOptions
from lightsnn.pipeline.config import DEVICE_PATTERN, MAX_SEED, NAME_PATTERN, RESULTS_PATTERN
from lightsnn.pipeline.tracking import DEFAULT_EXPERIMENT, TrackingOptions
from lightsnn.search import COMPAT_FLAGS, METHODS
from lightsnn.space.network import NetConfig
from lightsnn.space.neurons import LIFConfig
from lightsnn.space.ops import OPS, SPACES
from lightsnn.studies.bench import BenchOptions
from lightsnn.studies.evidence import EvidenceOptions
from lightsnn.training.metrics import EvaluateOptions
from lightsnn.training.train import TrainOptions


def _json_type(hint) -> dict:
    """The JSON schema of a field's type hint (the same hints :func:`lightsnn.core.options.check_types` enforces)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        arms = [_json_type(a) for a in args]
        simple = [a["type"] for a in arms if set(a) == {"type"} and isinstance(a["type"], str)]
        return {"type": simple} if len(simple) == len(arms) else {"oneOf": arms}
    if origin in (list, tuple):
        return {"type": "array", "items": _json_type(args[0])} if args else {"type": "array"}
    names = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object", type(None): "null"}
    return {"type": names[hint]} if hint in names else {}


def _type_of(hint, name: str) -> dict:
    if name == "space":
        return {"oneOf": [{"type": "string", "enum": list(SPACES) + list(old_names("op space"))},
                          {"type": "array", "items": {"type": "string"}, "minItems": 2}]}
    if name == "reference_compat":
        return {"oneOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string",
                                                                          "enum": list(COMPAT_FLAGS)}}]}
    return _json_type(hint)


def _dataclass_schema(cls) -> dict:
    """A JSON schema of an options dataclass: types from the type hints, help, choices and limits from the
    fields' metadata (:func:`lightsnn.core.options.opt`)."""
    hints = typing.get_type_hints(cls)
    props = {}
    for f in fields(cls):
        if f.name == "lif":
            continue
        default = field_default(f)
        prop = _type_of(hints[f.name], f.name)
        prop["description"] = f.metadata.get("help") or f.name
        allowed = f.metadata.get("choices")
        if allowed:
            prop["enum"] = list(allowed)
        for key, word in (("min", "minimum"), ("max", "maximum"), ("above", "exclusiveMinimum")):
            if f.metadata.get(key) is not None:
                prop[word] = f.metadata[key]
        prop["default"] = list(default) if isinstance(default, list) else default
        props[f.name] = prop
    return {"type": "object", "additionalProperties": False, "properties": props}


def network_schema() -> dict:
    schema = _dataclass_schema(NetConfig)
    for prop in schema["properties"].values():
        prop.pop("default", None)  # defaults come from the dataset's preset
    lif = _dataclass_schema(LIFConfig)
    for prop in lif["properties"].values():
        prop.pop("default", None)
    schema["properties"]["lif"] = {**lif, "description": "LIF neuron: tau, v_threshold, v_reset, detach_reset"}
    schema["description"] = "overrides of the dataset's network preset"
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
    props["baseline"]["enum"] = list(METHODS)
    props["seeds"].update(type="array", items={"type": "integer", "minimum": 0, "maximum": MAX_SEED},
                          uniqueItems=True, minItems=2)
    props["other_batch_sizes"].update(type="array", items={"type": "integer", "minimum": 2}, uniqueItems=True)
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
            "name": {"type": "string", "pattern": NAME_PATTERN, "default": DEFAULT_EXPERIMENT,
                     "description": "name of the run set (an MLflow experiment and results/<name>/): letters, digits and "
                                    "_ . -, starting with a letter or digit"},
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
                    "threads": {"type": "integer", "minimum": 1, "default": 1,
                                "description": "torch threads of each compute job (capped at --cores; a profile's "
                                               "set-threads overrides it per rule, and SLURM asks for as many CPUs)"},
                    "results": {"type": "string", "pattern": RESULTS_PATTERN, "default": "results",
                                "description": "output folder (letters, digits, spaces and _ . , + = @ : / -)"},
                },
            },
            "network": network_schema(),
            "networks": {"type": "object", "default": {}, "description": "network overrides per dataset",
                         "propertyNames": {"enum": list(DATASET_NAMES)}, "additionalProperties": network_schema(),
                         # an annotation validators ignore: the workflow reads which datasets are framed per T
                         "x-event-datasets": [name for name, spec in DATASETS.items() if spec.events]},
            "data": {**_dataclass_schema(DataOptions),
                     # annotations validators ignore: the files each dataset reads, for the workflow's prepare inputs
                     "x-dataset-files": {name: list(spec.files) for name, spec in DATASETS.items() if spec.files},
                     "x-downloadable": [name for name, spec in DATASETS.items() if spec.downloadable]},
            "search": {"type": "object", "additionalProperties": False, "default": {},
                       "description": "options per method", "properties": search},
            "train": {**train, "description": "training recipe and overrides"},
            "evaluate": {**_dataclass_schema(EvaluateOptions), "default": {}},
            "bench": {**_dataclass_schema(BenchOptions), "description": "sizes of 'python -m lightsnn bench'"},
            "evidence": evidence_schema(),
            "tracking": {**_dataclass_schema(TrackingOptions), "default": {}},
            "benchmark": {**_dataclass_schema(BenchmarkOptions), "default": {},
                          "description": "NAS-benchmark evidence ('snakemake benchmark', docs/evidence.md)"},
        },
        "$defs": {"ops": {"enum": list(OPS), "description": "registered op names"}},
    }


def with_defaults(config: dict, schema: dict | None = None) -> dict:
    """``config`` with every default of the schema filled in where a key is absent, as Snakemake's ``validate``
    fills them: what the workflow will read, for verbs that read a config the way the workflow does (``plan``)."""
    schema = config_schema() if schema is None else schema
    out = dict(config)
    for key, prop in (schema.get("properties") or {}).items():
        if key not in out and "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
        if isinstance(out.get(key), dict) and prop.get("properties"):
            out[key] = with_defaults(out[key], prop)
    return out


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


# --- config/README.md: its option tables are rendered from the schema, so help texts live in one place ---

#: Marks a generated block in config/README.md: ``<!-- options: SECTION -->`` ... ``<!-- end options -->``.
BLOCK = re.compile(r"(<!-- options: (?P<section>[\w.]+) -->\n).*?(<!-- end options -->)", re.S)


def _value(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value)


def _meaning(prop: dict) -> str:
    text = prop.get("description", "")
    choices = [_value(v) for v in prop.get("enum", [])]
    if choices and not all(re.search(rf"\b{re.escape(c)}\b", text) for c in choices):
        text += "; one of " + ", ".join(f"`{c}`" for c in choices)
    limits = [f"≥ {prop['minimum']}" if "minimum" in prop else "", f"≤ {prop['maximum']}" if "maximum" in prop else "",
              f"> {prop['exclusiveMinimum']}" if "exclusiveMinimum" in prop else ""]
    if any(limits):
        text += " (" + ", ".join(x for x in limits if x) + ")"
    return text.replace("|", "\\|").replace("\n", " ")


def _table(props: dict, default_column: str = "default", no_default: str = "") -> list[str]:
    lines = [f"| key | {default_column} | meaning |", "|---|---|---|"]
    for name, prop in props.items():
        default = f"`{_value(prop['default'])}`" if "default" in prop else no_default
        lines.append(f"| `{name}` | {default} | {_meaning(prop)} |")
    return lines


def _search_table(search: dict) -> list[str]:
    methods = list(search)
    lines = ["| option | " + " | ".join(methods) + " | meaning |", "|---|" + "---|" * len(methods) + "---|"]
    names: list[str] = []
    for schema in search.values():
        names += [n for n in schema["properties"] if n not in names]
    for name in names:
        cells, meaning = [], ""
        for method in methods:
            prop = search[method]["properties"].get(name)
            cells.append(f"`{_value(prop['default'])}`" if prop else "")
            meaning = meaning or (_meaning(prop) if prop else "")
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {meaning} |")
    return lines


def _recipes_table() -> list[str]:
    from lightsnn.training.train import RECIPES

    keys: list[str] = []
    for recipe in RECIPES.values():
        keys += [k for k in recipe if k not in keys]
    lines = ["| recipe | " + " | ".join(f"`{k}`" for k in keys) + " |", "|---|" + "---|" * len(keys)]
    for name, recipe in RECIPES.items():
        lines.append(f"| `{name}` | " + " | ".join(_value(recipe[k]) if k in recipe else "" for k in keys) + " |")
    return lines


def config_reference(section: str) -> str:
    """The generated table of one config section (``top`` for the top-level keys, ``recipes`` for the
    training recipes)."""
    schema = config_schema()
    props = schema["properties"]
    if section == "top":
        lines = _table({k: v for k, v in props.items() if "properties" not in v and k != "networks"})
    elif section == "search":
        lines = _search_table(props["search"]["properties"])
    elif section == "recipes":
        lines = _recipes_table()
    elif section == "network":
        network = dict(props["network"]["properties"])
        lif = network.pop("lif")["properties"]
        network.update({f"lif.{k}": v for k, v in lif.items()})
        lines = _table(network, "default", "preset")
    elif section == "train":
        from lightsnn.training.train import RECIPES, TrainOptions

        train = {name: dict(prop) for name, prop in props["train"]["properties"].items()}
        by_recipe = {key for recipe in RECIPES.values() for key in recipe}
        for f in fields(TrainOptions):
            if f.name not in by_recipe:
                train[f.name]["default"] = field_default(f)
        lines = _table(train, "default", "recipe")
    elif section in props and "properties" in props[section]:
        lines = _table(props[section]["properties"])
    else:
        raise ValueError(f"config/README.md names an unknown options block {section!r}")
    return "\n".join(lines) + "\n"


def render_config_readme(text: str, where: str = "the file") -> str:
    """``text`` (config/README.md) with every ``<!-- options: SECTION -->`` block regenerated; a text with no
    such block is refused (regenerating nothing would look like success)."""
    if not BLOCK.search(text):
        raise ValueError(f"{where} holds no option tables to regenerate: it has no '<!-- options: SECTION -->' ... "
                         "'<!-- end options -->' block (config/README.md has them)")
    return BLOCK.sub(lambda m: m.group(1) + config_reference(m.group("section")) + m.group(3), text)

#!/usr/bin/env python3
"""Checks the TaskFarm CRD and its examples offline.

kubernetes-validate checks the CRD object itself but knows no schema for a custom kind, so
this script does the rest with the CRD's own openAPIV3Schema:

1. the schema is structural (every node has a type, no value-level anyOf/oneOf/allOf, no
   `additionalProperties` beside `properties`), as the API server requires for v1 CRDs;
2. every defaulted field's default validates against its own schema (the API server rejects
   a CRD whose defaults do not);
3. each crds/examples/*.yaml validates against the schema, with unknown fields rejected (the
   API server would prune them silently, which hides typos).

Usage: python3 crds/check.py   (needs PyYAML and jsonschema; `pip install kubernetes-validate`
brings both).
"""

import copy
import glob
import os
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def structural_problems(node, path="$"):
    problems = []
    if not isinstance(node, dict):
        return problems
    special = node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    if "type" not in node and not special:
        problems.append(f"{path}: no type")
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node and not special:
            problems.append(f"{path}: {key} at a value position")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: both properties and additionalProperties")
    for name, child in node.get("properties", {}).items():
        problems += structural_problems(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}{{}}")
    return problems


def strict(schema):
    """JSON Schema of the CRD schema: nullable honoured, unknown fields refused."""
    s = copy.deepcopy(schema)
    for key in [k for k in s if k.startswith("x-kubernetes-")]:
        del s[key]
    if s.pop("nullable", False) and "type" in s:
        s["type"] = [s["type"], "null"]
    if "properties" in s:
        s["properties"] = {k: strict(v) for k, v in s["properties"].items()}
        s.setdefault("additionalProperties", False)
    if isinstance(s.get("items"), dict):
        s["items"] = strict(s["items"])
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = strict(s["additionalProperties"])
    return s


def default_problems(node, path="$"):
    problems = []
    if not isinstance(node, dict):
        return problems
    if "default" in node:
        try:
            jsonschema.validate(node["default"], strict({k: v for k, v in node.items() if k != "default"}))
        except jsonschema.ValidationError as e:
            problems.append(f"{path}: default does not validate: {e.message}")
    for name, child in node.get("properties", {}).items():
        problems += default_problems(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        problems += default_problems(node["items"], f"{path}[]")
    return problems


def main():
    with open(os.path.join(HERE, "taskfarm.yaml")) as f:
        crd = yaml.safe_load(f)
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    problems = structural_problems(schema) + default_problems(schema)
    # metadata is the API server's business: accept any.
    s = strict(schema)
    s["properties"]["metadata"] = {"type": "object"}
    s["properties"]["apiVersion"] = {"const": f"{crd['spec']['group']}/{version['name']}"}
    s["properties"]["kind"] = {"const": crd["spec"]["names"]["kind"]}
    examples = sorted(glob.glob(os.path.join(HERE, "examples", "*.yaml")))
    for path in examples:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                for e in jsonschema.Draft7Validator(s).iter_errors(doc):
                    problems.append(f"{os.path.basename(path)}: {'.'.join(map(str, e.path))}: {e.message}")
    for p in problems:
        print("FAIL", p)
    print(f"CRD structural and defaults checked; {len(examples)} examples validated; {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Validates deploy/: every Kubernetes manifest against Kubernetes' own JSON schemas in strict mode
(kubernetes-validate: no unknown fields), every KServe resource against KServe's API models (the
kserve SDK, generated from the CRDs' OpenAPI schemas: no unknown fields, the right types,
required fields present), and the Dockerfile's shape (dockerfile-parse: multi-stage, runs as a
non-root user, has a health check, copies what exists). One line per document; exit status 1 if
any is invalid.

usage: validate.py [FILE...]   (default: everything under deploy/)
"""
import pathlib
import re
import sys

import kubernetes.client
import kserve.models
import kubernetes_validate
import yaml
from dockerfile_parse import DockerfileParser

KUBERNETES = "1.33"
ROOT = pathlib.Path(__file__).resolve().parent.parent
SCALARS = {
    "str": str,
    "bool": bool,
    "int": int,
    "float": (int, float),
    "datetime": str,
    "date": str,
    "ResourceQuantity": (str, int, float),
}


def model_class(name):
    klass = getattr(kserve.models, name, None) or getattr(kubernetes.client, name, None)
    if klass is None or not hasattr(klass, "openapi_types"):
        raise ValueError(f"the SDK has no type {name}")
    return klass


def build(value, type_name, path):
    """The SDK object for `value` of OpenAPI type `type_name`; raises ValueError naming the field."""
    if type_name == "object":
        return value
    listed = re.fullmatch(r"[lL]ist\[(.+)\]", type_name)
    if listed:
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected a list")
        return [build(v, listed[1], f"{path}[{i}]") for i, v in enumerate(value)]
    mapped = re.fullmatch(r"dict\(str, (.+)\)|Dict\[str, (.+)\]", type_name)
    if mapped:
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected a mapping")
        inner = mapped[1] or mapped[2]
        return {k: build(v, inner, f"{path}.{k}") for k, v in value.items()}
    if type_name in SCALARS:
        wanted = SCALARS[type_name]
        if not isinstance(value, wanted) or (type_name == "int" and isinstance(value, bool)):
            raise ValueError(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return value
    klass = model_class(type_name)
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a {type_name} mapping")
    by_key = {key: attr for attr, key in klass.attribute_map.items()}
    fields = {}
    for key, v in value.items():
        if key not in by_key:
            raise ValueError(f"{path}.{key}: unknown field of {type_name}")
        attr = by_key[key]
        fields[attr] = build(v, klass.openapi_types[attr], f"{path}.{key}")
    try:
        return klass(**fields)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}")


KSERVE_KINDS = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}


def check_manifest(doc):
    """How `doc` was validated; raises ValueError when it is not valid."""
    kind = (doc.get("apiVersion"), doc.get("kind"))
    if kind in KSERVE_KINDS:
        build(doc, KSERVE_KINDS[kind], doc["kind"])
        return f"KServe API ({kserve.__name__} {KSERVE_VERSION})"
    try:
        version = kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as e:
        where = ".".join(str(p) for p in e.path)
        raise ValueError(f"{where}: {e.message}")
    except kubernetes_validate.SchemaNotFoundError:
        raise ValueError(f"no schema for {kind[0]} {kind[1]}")
    return f"Kubernetes {version} schema, strict"


def check_dockerfile(path):
    """Raises ValueError unless the Dockerfile is multi-stage, runs as non-root, has a health
    check and copies only what exists."""
    parser = DockerfileParser(str(path))
    stages, names = [], set()
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            stages.append([])
            words = value.split()
            if len(words) == 3 and words[1].upper() == "AS":
                names.add(words[2])
        elif stages:
            stages[-1].append((instruction, value))
    if len(stages) < 2:
        raise ValueError("not multi-stage (one FROM)")
    final = stages[-1]
    users = [v for i, v in final if i == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        raise ValueError("the final stage does not switch to a non-root USER")
    if not any(i == "HEALTHCHECK" for i, _ in final):
        raise ValueError("the final stage has no HEALTHCHECK")
    for stage in stages:
        for instruction, value in stage:
            if instruction != "COPY":
                continue
            words = value.split()
            flags = [w for w in words if w.startswith("--")]
            sources = [w for w in words if not w.startswith("--")][:-1]
            stage_from = [f.split("=", 1)[1] for f in flags if f.startswith("--from=")]
            if stage_from:
                if stage_from[0] not in names:
                    raise ValueError(f"COPY --from={stage_from[0]}: no such stage")
            else:
                for source in sources:
                    if not (ROOT / source).exists():
                        raise ValueError(f"COPY {source}: not in the repository")
    return "Dockerfile: multi-stage, non-root, health check"


def main(paths):
    failed = 0
    for path in paths:
        path = pathlib.Path(path)
        try:
            if path.name == "Dockerfile":
                results = [("", check_dockerfile(path))]
            else:
                results = []
                for doc in yaml.safe_load_all(path.read_text()):
                    if doc:
                        results.append((f" {doc.get('kind')}/{doc.get('metadata', {}).get('name')}", check_manifest(doc)))
            for what, how in results:
                print(f"ok {path}{what}: {how}")
        except (ValueError, yaml.YAMLError) as e:
            failed += 1
            print(f"error: {path}: {' '.join(str(e).split())}")
    return 1 if failed else 0


KSERVE_VERSION = __import__("importlib.metadata").metadata.version("kserve")

if __name__ == "__main__":
    here = pathlib.Path(__file__).resolve().parent
    default = sorted(p for p in here.rglob("*") if p.name == "Dockerfile" or p.suffix == ".yaml")
    sys.exit(main(sys.argv[1:] or default))

"""Each vocabulary is defined once (napari_ultramn.vocabulary) and the schemas list the same words."""

import json
from pathlib import Path

from napari_ultramn import vocabulary as V

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def _enums(schema_name: str, key: str) -> list[list]:
    """Every ``enum`` of a property named ``key`` anywhere in the schema (or of its array items)."""
    found: list[list] = []

    def walk(node):
        if isinstance(node, dict):
            for prop, sub in (node.get("properties") or {}).items():
                if prop == key and isinstance(sub, dict):
                    enum = sub.get("enum") or (sub.get("items") or {}).get("enum")
                    if enum:
                        found.append([v for v in enum if v is not None])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads((SCHEMAS / f"{schema_name}.schema.json").read_text()))
    return found


def test_the_annotation_schema_lists_the_vocabularies():
    assert _enums("annotation", "provenance") == [list(V.PROVENANCES)]
    assert _enums("annotation", "quality") == [list(V.QUALITIES)]
    assert _enums("annotation", "status") == [list(V.STATUSES)]


def test_the_manifest_schema_lists_the_splits():
    found = _enums("dataset_manifest", "split") + _enums("dataset_manifest", "splits")
    assert found and all(e == list(V.SPLITS) for e in found)


def test_one_definition_each():
    from napari_ultramn.annotation import clip_annotation as annotation_model
    from napari_ultramn.annotation import controller
    from napari_ultramn.model import MODEL_NAMES, data, evaluate, train

    assert MODEL_NAMES is V.MODEL_NAMES and train.MODELS is V.MODEL_NAMES
    assert evaluate.BASELINES is V.BASELINE_MODELS and data.SPLITS is V.SPLITS
    assert annotation_model.PROVENANCES is V.PROVENANCES and controller.QUALITIES is V.QUALITIES
    assert set(V.HUMAN_PROVENANCES) < set(V.PROVENANCES)

"""Extraction precision and recall on the Northwind corpus against a hand-made list of items."""

from __future__ import annotations

import re
import sys
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import World
from tests.raid.conftest import GOLD, items

FLOOR = 0.9


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def _matches(found: dict[str, Any], gold: dict[str, Any], names: dict[str, str]) -> bool:
    if found["kind"] != gold["kind"] or names.get(found["source"]["artifact_id"]) != gold["document"]:
        return False
    if gold["ref"]:
        return bool(found["ref"] == gold["ref"])
    a, b = _words(found["title"]), _words(gold["title"])
    return len(a & b) / max(1, min(len(a), len(b))) >= 0.6


def score(found: list[dict[str, Any]], names: dict[str, str]) -> dict[str, Any]:
    """Match each found item to at most one hand-listed item; count fields that agree."""
    unmatched = list(GOLD)
    pairs = []
    for item in found:
        hit = next((g for g in unmatched if _matches(item, g, names)), None)
        if hit is not None:
            unmatched.remove(hit)
            pairs.append((item, hit))
    fields = {f: sum(1 for i, g in pairs if (i[f] or None) == g[f]) for f in ("owner", "due", "status")}
    return {"precision": len(pairs) / max(1, len(found)), "recall": len(pairs) / len(GOLD), "pairs": pairs,
            "missed": unmatched, "extra": [i for i in found if all(i is not p for p, _ in pairs)], "fields": fields}


def test_northwind_extraction_meets_the_floor(client: TestClient, world: World,
                                              northwind: dict[str, dict[str, Any]]) -> None:
    names = {doc["id"]: name for name, doc in northwind.items()}
    found = items(client, world)
    result = score(found, names)
    n = len(result["pairs"])
    lines = [f"\nRAID extraction on Northwind: {len(found)} proposed, {len(GOLD)} expected, {n} matched; "
             f"precision {result['precision']:.3f}, recall {result['recall']:.3f}; "
             + ", ".join(f"{f} right {c}/{n}" for f, c in result["fields"].items())]
    lines += [f"  missed: {g['kind']} {g['ref'] or ''} {g['title']} ({g['document']})" for g in result["missed"]]
    lines += [f"  extra: {i['kind']} {i['ref'] or ''} {i['title']} ({names.get(i['source']['artifact_id'])})"
              for i in result["extra"]]
    sys.stdout.write("\n".join(lines) + "\n")
    assert result["precision"] >= FLOOR, result["extra"]
    assert result["recall"] >= FLOOR, result["missed"]
    assert all(c >= FLOOR * n for c in result["fields"].values()), result["fields"]


def test_every_proposal_quotes_its_document_verbatim(client: TestClient, world: World,
                                                     northwind: dict[str, dict[str, Any]]) -> None:
    found = items(client, world)
    assert found
    for item in found:
        source = item["source"]
        assert item["state"] == "suggested"
        assert source["link"].startswith(f"/p/{world.project_a}/documents/{source['artifact_id']}")
        detail = client.get(f"/api/documents/{source['artifact_id']}", params={"project_id": str(world.project_a)},
                            headers=world.h("member"))
        text = "\n".join(page["text"] for page in detail.json()["pages"])
        assert source["quote"], (item["title"], source["quote"])
        assert source["quote"] in text, (item["title"], source["quote"])
    rows = {i["ref"]: i["source"] for i in found if i["ref"]}
    assert rows["R-07"]["locator"] == "Sheet RAID log, row 3"
    assert rows["R-07"]["page"] == 1
    assert rows["A-07"]["quote"].startswith("Action A-07: Hannah Brooks to deliver")

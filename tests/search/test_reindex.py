"""`gateway reindex`: a custom SearchParameter is indexed without code changes."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from gateway.search.extract import IndexExtractor
from gateway.search.registry import SearchParamRegistry
from gateway.search.reindex import reindex_engine
from gateway.store.tables import idx_string, idx_token
from tests.search import data
from tests.search.conftest import seed

CUSTOM = {
    "resourceType": "SearchParameter",
    "url": "http://example.org/fhir/SearchParameter/patient-nickname",
    "name": "nickname",
    "status": "active",
    "code": "nickname",
    "base": ["Patient"],
    "type": "string",
    "expression": "Patient.name.where(use = 'nickname').given",
}


@pytest.fixture(scope="module", autouse=True)
async def seeded(app):
    nick = data.patient("n1", "陈", "大文")
    nick["name"].append({"use": "nickname", "given": ["阿文"]})
    await seed(app, [*data.resources(), nick])


async def test_reindex_adds_rows_for_a_custom_parameter(app, tmp_path):
    (tmp_path / "nickname.json").write_text(json.dumps(CUSTOM), encoding="utf-8")
    registry = SearchParamRegistry.load(extra_dirs=[tmp_path])
    engine = app.state.core.store.engine
    seen: list[tuple[int, int]] = []
    done = await reindex_engine(engine, IndexExtractor(registry), lambda d, t: seen.append((d, t)))
    assert done == len(data.resources()) + 1
    assert seen[0] == (0, done) and seen[-1] == (done, done)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(idx_string.c.res_id).where(
                    idx_string.c.param == "nickname", idx_string.c.norm.like("阿%")
                )
            )
        ).all()
        tokens = (
            await conn.execute(select(idx_token.c.res_id).where(idx_token.c.param == "gender"))
        ).all()
    assert [r.res_id for r in rows] == ["n1"]
    assert len(tokens) == 4  # the ordinary rows were rebuilt too
    # Back to the server's own definitions.
    await reindex_engine(engine, app.state.core.store.extractor)

"""The recognition rules file and the packs' sections: checked at load, naming the place."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.policy.pack import PackError, Packs
from gateway.recognition.rules import RecognitionError, load

POLICY = Path(__file__).parents[3] / "profiles" / "policy"


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "policy"
    shutil.copytree(POLICY, folder)
    return folder


def test_the_shipped_rules_load() -> None:
    rec = load(POLICY)
    assert rec.region_for("440104").scope == ["4401"]
    assert rec.region_for("410102").scope == ["4101"]
    assert rec.region_for("650102").scope == ["65"]
    assert Packs.load(POLICY).recognition is not None


def test_a_region_overrides_an_items_days(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    path = folder / "guangzhou.yaml"
    path.write_text(path.read_text(encoding="utf-8") + '  days: {"4548-4": 60}\n', "utf-8")
    rec = load(folder)
    item = rec.rules.item_by_code("4548-4")
    assert item is not None
    assert rec.days(item, rec.region_for("440104")) == 60
    assert rec.days(item, rec.region_for("410102")) == 90


@pytest.mark.parametrize(
    ("file", "append", "message"),
    [
        ("guangzhou.yaml", '  days: {"0000-0": 5}\n', "guangzhou.yaml: recognition.days.0000-0"),
        ("guangzhou.yaml", '  days: {"4548-4": 0}\n', "guangzhou.yaml: recognition.days"),
        ("zhongyuan.yaml", "  extra: 1\n", "zhongyuan.yaml: recognition.extra"),
        (
            "recognition.yaml",
            "  - {name: x, kind: lab, codes: [nosystem], days: 3}\n",
            "recognition.yaml: items.20.codes",
        ),
    ],
)
def test_a_broken_file_stops_start_up_naming_the_place(
    tmp_path: Path, file: str, append: str, message: str
) -> None:
    folder = _copy(tmp_path)
    path = folder / file
    path.write_text(path.read_text(encoding="utf-8") + append, "utf-8")
    with pytest.raises(RecognitionError, match=message.replace(".", r"\.")):
        load(folder)
    with pytest.raises(PackError, match=message.split(":")[0]):
        Packs.load(folder)


def test_a_bad_scope_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    path = folder / "guangzhou.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace('scope: "4401"', 'scope: "44x"'), "utf-8"
    )
    with pytest.raises(RecognitionError, match="guangzhou.yaml: recognition.scope"):
        load(folder)

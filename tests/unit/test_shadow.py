"""Shadow scoring: its own state and outputs, and the comparison with the live outputs."""

from __future__ import annotations

import pytest

from consumer.config import ConfigError, build_settings
from consumer.engine.versions import ModelVersions
from consumer.shadow import ShadowScoring
from tests.prefix_sum_step import PrefixSumStep
from tests.stream_reference import record
from tests.unit.engine.test_versions import TenfoldStep


def test_the_shadow_keeps_its_own_state_and_is_compared_step_for_step() -> None:
    live = ModelVersions(PrefixSumStep())
    shadow = ShadowScoring(TenfoldStep(), "shadow")
    batch = [record("a", 0, [[0.1, 0.0, 0.0]]), record("b", 1, [[0.3, 0.0, 0.0], [0.4, 0, 0]])]
    results = live.process(batch, 0.0)
    mirrored = shadow.process(batch, 0.0)
    assert mirrored.outputs.steps == [1, 1, 2]
    assert [round(float(v), 4) for v in mirrored.outputs.values[:, 0]] == [1.0, 3.0, 7.0]
    agreement = shadow.compare(results, mirrored)[PrefixSumStep().version]
    # live 0.1, 0.3, 0.7 against shadow 1.0, 3.0, 7.0: only 0.7 is on the shadow's side of 0.5
    assert agreement.compared == 3 and agreement.agreeing == 1
    assert agreement.abs_difference == pytest.approx(0.9 + 2.7 + 6.3, rel=1e-5)


def test_a_shadow_that_lost_its_state_is_compared_only_where_steps_match() -> None:
    live = ModelVersions(PrefixSumStep())
    shadow = ShadowScoring(TenfoldStep(), "shadow")
    first = [record("a", 0, [[1.0, 0.0, 0.0]])]
    live.process(first, 0.0)
    shadow.process(first, 0.0)
    shadow.drop_partitions([0])  # a rebalance: live restores from the changelog, shadow cannot
    second = [record("a", 1, [[1.0, 0.0, 0.0]])]
    mirrored = shadow.process(second, 0.0)
    assert mirrored.outputs.steps == [1]  # the shadow starts over
    assert shadow.compare(live.process(second, 0.0), mirrored) == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--shadow-model", "c.keras"], "go together"),
        (["--shadow-topic", "s"], "go together"),
        (["--shadow-model", "c.keras", "--shadow-topic", "probabilities"], "also --output-topic"),
        (["--shadow-model", "c.keras", "--shadow-topic", "bad topic"], "not a valid topic"),
    ],
)
def test_shadow_settings_are_checked(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_settings(["--model", "m.keras", *argv], {})


def test_shadow_settings_from_the_environment() -> None:
    settings = build_settings(
        ["--model", "m.keras"], {"SHADOW_MODEL": "c.keras", "SHADOW_TOPIC": "shadow"}
    )
    assert str(settings.shadow_model) == "c.keras" and settings.shadow_topic == "shadow"

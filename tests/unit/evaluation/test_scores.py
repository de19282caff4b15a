"""The evaluation's computations on a case small enough to work out by hand."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from consumer.codecs.outputs import OutputRecord
from producer_sim.evaluation.report import summary_lines, write_report
from producer_sim.evaluation.scores import OutputJoin, latency_summary, nearest_rank
from producer_sim.labels import LabelsError, SequenceLabel, encode_label, read_labels

TS = 1_000_000


def out(
    key: str,
    step: int,
    p: float,
    offset: int,
    *,
    final: bool = False,
    reason: str | None = None,
) -> OutputRecord:
    return OutputRecord(
        sequence_id=key,
        step=step,
        probability=p,
        probabilities=None,
        final=final,
        reason=reason,  # type: ignore[arg-type]
        model_version="v1",
        partition=0,
        offset=offset,
        ts=TS,
    )


LABELS = [
    SequenceLabel("A", 1, 3, True),
    SequenceLabel("B", 0, 2, True),
    SequenceLabel("C", 1, 1, True),
    SequenceLabel("D", 0, 3, True),
    SequenceLabel("F", 1, 2, False),  # only its first step arrives: incomplete
    SequenceLabel("G", 0, 2, False, cut_short=True),  # complete, but not at its real end
]

# (output, latency in ms); latencies 10..130 for the 13 distinct outputs of labelled keys.
OUTPUTS = [
    (out("A", 1, 0.6, 1), 10),
    (out("B", 1, 0.4, 2), 20),
    (out("C", 1, 0.3, 3, final=True, reason="end"), 30),
    (out("D", 1, 0.65, 4), 40),
    (out("A", 2, 0.7, 5), 50),
    (out("B", 2, 0.2, 6), 60),
    (out("D", 2, 0.5, 7), 70),
    (out("D", 2, 0.5, 7), 999),  # redelivered: not a new step, not a latency
    (out("B", 2, 0.2, 8, final=True, reason="end"), 80),  # a bare end marker's final record
    (out("A", 3, 0.9, 9, final=True, reason="end"), 90),
    (out("D", 3, 0.1, 10, final=True, reason="end"), 100),
    (out("F", 1, 0.8, 11), 110),
    (out("G", 1, 0.1, 13), 120),
    (out("G", 2, 0.95, 14), 130),
    (out("E", 1, 0.99, 12), 5000),  # a key that is not labelled
]


def joined() -> OutputJoin:
    join = OutputJoin(LABELS)
    for record, latency in OUTPUTS:
        join.add(record, TS + latency)
    return join


def test_scores_by_step_match_the_hand_computed_values() -> None:
    ev = joined().evaluate(n_trajectories=1)
    steps = {s.step: s for s in ev.by_step}
    assert sorted(steps) == [1, 2, 3]
    # Step 1: positives A .6, C .3, F .8; negatives B .4, D .65, G .1. Pairs won: .6 over .4
    # and .1, .3 over .1, .8 over all three: 6 of 9. Right side of 0.5: A, B, F, G: 4 of 6.
    assert (steps[1].count, steps[1].positives) == (6, 3)
    assert steps[1].roc_auc == pytest.approx(2 / 3)
    assert steps[1].accuracy == pytest.approx(4 / 6)
    # Step 2: A .7 against B .2, D .5, G .95: 2 of 3 pairs won. Right side: A and B (D at
    # exactly 0.5 counts as label 1): 2 of 4.
    assert (steps[2].count, steps[2].positives) == (4, 1)
    assert steps[2].roc_auc == pytest.approx(2 / 3)
    assert steps[2].accuracy == pytest.approx(0.5)
    assert (steps[3].count, steps[3].roc_auc, steps[3].accuracy) == (2, 1.0, 1.0)


def test_final_step_uses_complete_sequences_at_their_last_step() -> None:
    ev = joined().evaluate()
    # A .9, B .2, C .3, D .1 (F is incomplete, G cut short): every positive above every
    # negative; C is on the wrong side of 0.5.
    assert (ev.labelled, ev.complete, ev.cut_short, ev.all_complete) == (6, 5, 1, False)
    assert (ev.final.count, ev.final.positives) == (4, 2)
    assert ev.final.roc_auc == pytest.approx(1.0)
    assert ev.final.accuracy == pytest.approx(0.75)
    assert ev.final_probabilities == ((0.2, 0.1), (0.9, 0.3))


def test_counts_repeats_and_unlabelled_outputs() -> None:
    ev = joined().evaluate()
    assert (ev.outputs, ev.repeats, ev.unlabelled_outputs) == (14, 1, 1)
    assert ev.model_versions == ("v1",)


def test_latency_percentiles_by_nearest_rank() -> None:
    lat = joined().evaluate().latency
    # 13 latencies 10..130: p50 is the 7th (ceil(6.5)), p95 and p99 the 13th.
    assert (lat.count, lat.p50_ms, lat.p95_ms, lat.p99_ms, lat.max_ms) == (13, 70, 130, 130, 130)
    hundred = latency_summary(float(v) for v in range(100, 0, -1))
    assert (hundred.p50_ms, hundred.p95_ms, hundred.p99_ms, hundred.max_ms) == (50, 95, 99, 100)
    assert nearest_rank([1.0, 3.0, 5.0], 50) == 3.0
    assert latency_summary([]).p50_ms is None


def test_trajectories_are_the_first_complete_sequences_of_each_label() -> None:
    ev = joined().evaluate(n_trajectories=1)
    assert [(t.key, t.label, t.probabilities) for t in ev.trajectories] == [
        ("A", 1, (0.6, 0.7, 0.9)),
        ("B", 0, (0.4, 0.2)),
    ]


def test_one_class_only_has_no_auc_but_an_accuracy() -> None:
    join = OutputJoin([SequenceLabel("A", 1, 1, True)])
    join.add(out("A", 1, 0.7, 1), None)
    ev = join.evaluate()
    assert ev.final.roc_auc is None
    assert ev.final.accuracy == 1.0
    assert ev.latency.count == 0  # no Kafka timestamp, no latency


def test_report_files(tmp_path: Path) -> None:
    ev = joined().evaluate()
    json_path, png_path = write_report(ev, {"stopped": "complete"}, tmp_path / "r")
    doc = orjson.loads(json_path.read_bytes())
    assert doc["final_step"] == {
        "count": 4,
        "positives": 2,
        "roc_auc": 1.0,
        "accuracy": 0.75,
    }
    assert [s["step"] for s in doc["by_step"]] == [1, 2, 3]
    assert doc["latency_ms"]["p50_ms"] == 70
    assert doc["sequences"] == {"labelled": 6, "complete": 5, "cut_short": 1}
    assert doc["complete"] is False
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = "\n".join(summary_lines(ev))
    assert "ROC AUC 1.000, accuracy 0.750 over 4 sequences" in text


def test_labels_file_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_bytes(b"".join(encode_label(item) + b"\n" for item in LABELS))
    assert read_labels(path) == LABELS
    path.write_bytes(encode_label(LABELS[0]) + b"\n" + encode_label(LABELS[0]) + b"\n")
    with pytest.raises(LabelsError, match=":2: key 'A' appears twice"):
        read_labels(path)
    path.write_bytes(b'{"key":"A","label":2,"length":1}\n')
    with pytest.raises(LabelsError, match=":1: label must be 0 or 1"):
        read_labels(path)

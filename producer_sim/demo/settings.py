"""What the demo runs with: `python -m producer_sim demo`'s options, and the names and ports
derived from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoSettings:
    seconds: float = 60.0
    rate: float = 2000.0
    devices: int = 1000
    model: Path = Path("models/reference.keras")
    name: str = "demo"
    metrics_port: int = 8001
    run_dir: Path = Path(".run/demo")
    report_dir: Path = Path("reports")
    workers: int = 2
    partitions: int = 6
    bad_ratio: float = 0.001  # a few malformed records, so the DLQ count moves
    never_end_ratio: float = 0.01  # evicted after idle_timeout_s with a final record
    idle_timeout_s: float = 20.0
    ready_timeout_s: float = 180.0
    drain_timeout_s: float = 120.0
    rollout_after_s: float = 0.0  # 0: no rollout; else a second model version this far in

    @property
    def second_model(self) -> Path:
        """The version a rollout switches to, trained with another seed if missing."""
        return self.model.with_name(f"{self.model.stem}-v2{self.model.suffix}")

    @property
    def model_store(self) -> Path:
        """With a rollout, the workers' model store: both versions and the `current` pointer."""
        return self.run_dir / "models"

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.rate <= 0 or self.devices < 1:
            raise ValueError("seconds and rate must be > 0 and devices >= 1")
        if not 0 <= self.rollout_after_s < self.seconds:
            raise ValueError("the rollout must come while the simulator sends (0: none)")
        if not 1 <= self.metrics_port <= 65535 - self.workers:
            raise ValueError(f"metrics port {self.metrics_port} out of range")

    @property
    def topics(self) -> tuple[str, str, str, str]:
        """Input, output, dead-letter and changelog topics."""
        n = self.name
        return (
            f"{n}.samples",
            f"{n}.probabilities",
            f"{n}.samples.dlq",
            f"{n}-scorer-state-changelog",
        )

    @property
    def ports(self) -> list[int]:
        return [self.metrics_port + i for i in range(self.workers)]

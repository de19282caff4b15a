"""The demo's steps (see `producer_sim.demo.command`), and the record of what it started, which
`cleanup` stops whatever step was reached."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from consumer.config import kafka_passthrough
from producer_sim.cluster import processes
from producer_sim.cluster.env import child_env
from producer_sim.cluster.worker import Worker
from producer_sim.demo import topics
from producer_sim.demo.broker import BrokerError, DemoBroker
from producer_sim.demo.settings import DemoSettings
from producer_sim.demo.view import LiveView, WorkerReading, combined, ready, scrape
from producer_sim.evaluation.command import EvaluateSettings, TopicMissingError, evaluate
from producer_sim.evaluation.report import summary_lines
from producer_sim.evaluation.scores import Evaluation
from producer_sim.simulator.progress import Progress
from producer_sim.simulator.sender import Sender, Totals
from producer_sim.simulator.settings import SimSettings
from producer_sim.simulator.workload import WorkloadSettings


class DemoError(RuntimeError):
    """A step failed; the message says which and where to look."""


class DemoRun:
    def __init__(
        self,
        settings: DemoSettings,
        out: TextIO,
        port_free: Callable[[int], bool],
        clock: Callable[[], float],
    ) -> None:
        self.s = settings
        self.out = out
        self._port_free = port_free
        self._clock = clock
        self._env = child_env()
        self.broker = DemoBroker(self._env, self.say)
        self.workers: list[Worker] = []
        self._stop_sim = threading.Event()
        self._sim_thread: threading.Thread | None = None
        self._view = LiveView(out, out.isatty())

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def run(self) -> int:
        self.s.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            bootstrap = self.broker.ensure()
        except BrokerError as exc:
            raise DemoError(str(exc)) from None
        self._model()
        self._topics(bootstrap)
        self._start_workers(bootstrap)
        self._wait_ready()
        totals = self._simulate(bootstrap)
        self._drain()
        ev = self._evaluate(bootstrap)
        return 0 if ev.all_complete and totals.all_delivered else 1

    def _model(self) -> None:
        self._trained(self.s.model, seed=None)
        if not self.s.rollout_after_s:
            return
        self._trained(self.s.second_model, seed=2)
        store = self.s.model_store
        store.mkdir(parents=True, exist_ok=True)
        for path, name in ((self.s.model, "v1.keras"), (self.s.second_model, "v2.keras")):
            (store / name).write_bytes(path.read_bytes())
        self._point(store, "v1.keras")
        self.say(f"model store: {store} (current: v1.keras, the rollout moves it to v2.keras)")

    def _trained(self, path: Path, seed: int | None) -> None:
        if path.exists():
            self.say(f"model: {path}")
            return
        self.say(f"model: {path} is missing; training it (about a minute)")
        path.parent.mkdir(parents=True, exist_ok=True)
        train = [sys.executable, "-m", "consumer", "train", "--output", str(path)]
        train += ["--seed", str(seed)] if seed is not None else []
        code, _ = processes.run(train, env=self._env, cwd=Path.cwd())
        if code != 0:
            raise DemoError(f"training failed (exit {code}); see above")

    @staticmethod
    def _point(store: Path, name: str) -> None:
        """Move the store's `current` pointer at once (a new link renamed over the old one)."""
        new = store / "current.new"
        new.unlink(missing_ok=True)
        new.symlink_to(name)
        new.replace(store / "current")

    def _roll_out(self) -> None:
        self._point(self.s.model_store, "v2.keras")
        for worker in self.workers:
            if worker.proc is not None:
                worker.proc.send_signal(signal.SIGHUP)
        self._view.release()
        self.say("rollout: current -> v2.keras, SIGHUP sent; running sequences finish on v1")

    def _topics(self, bootstrap: str) -> None:
        input_topic = self.s.topics[0]
        try:
            old = topics.recreate(bootstrap, self.s.topics, input_topic, self.s.partitions)
        except topics.TopicSetupError as exc:
            raise DemoError(str(exc)) from None
        if old:
            self.say(f"topics: deleted the previous demo's {', '.join(old)}")
        self.say(f"topics: {input_topic} with {self.s.partitions} partitions")

    def _start_workers(self, bootstrap: str) -> None:
        busy = [p for p in self.s.ports if not self._port_free(p)]
        if busy:
            raise DemoError(f"port(s) {busy} in use: choose others with --metrics-port")
        input_topic, output_topic, dlq_topic, _ = self.s.topics
        for i, port in enumerate(self.s.ports, start=1):
            log_path = self.s.run_dir / f"worker-{i}.log"
            model = self.s.model_store if self.s.rollout_after_s else self.s.model
            flags = [
                "--model", str(model.resolve()),
                "--bootstrap-servers", bootstrap,
                "--input-topic", input_topic,
                "--output-topic", output_topic,
                "--dlq-topic", dlq_topic,
                "--group-id", f"{self.s.name}-scorer",
                "--instance-id", f"{self.s.name}-{i}",
                "--create-topics",
                "--metrics-addr", "127.0.0.1",
                "--idle-timeout-s", str(self.s.idle_timeout_s),
            ]  # fmt: skip
            log_path.write_bytes(b"")  # this run's log only
            # In a session of its own: the terminal's Ctrl-C reaches the demo, which stops it.
            worker = Worker(flags, log_path, self._env, cwd=Path.cwd(), own_session=True, port=port)
            with processes.signals_deferred():
                self.workers.append(worker.start())
            self.say(
                f"worker {i} started (pid {worker.pid}, metrics http://127.0.0.1:{port}/metrics,"
                f" log {log_path})"
            )

    def _check_workers(self) -> None:
        for i, worker in enumerate(self.workers, start=1):
            code = worker.exit_code()
            if code is not None:
                log = self.s.run_dir / f"worker-{i}.log"
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise DemoError(f"worker {i} exited with {code}; the end of {log}:\n{tail}")

    def _wait_ready(self) -> None:
        self.say("workers: loading the model and joining the group ...")
        deadline = self._clock() + self.s.ready_timeout_s
        waiting = set(self.s.ports)
        while waiting:
            self._check_workers()
            waiting = {p for p in waiting if not ready(p)}
            if self._clock() > deadline:
                raise DemoError(f"workers on ports {sorted(waiting)} not ready in time")
            time.sleep(0.5)
        self.say("workers: ready")

    def _simulate(self, bootstrap: str) -> Totals:
        s = self.s
        common, _, producer = kafka_passthrough(os.environ)
        settings = SimSettings(
            WorkloadSettings(
                devices=s.devices, bad_ratio=s.bad_ratio, never_end_ratio=s.never_end_ratio
            ),
            bootstrap_servers=bootstrap,
            input_topic=s.topics[0],
            rate=s.rate,
            duration_s=s.seconds,
            labels_out=s.run_dir / "labels.jsonl",
            progress="none",
            kafka={**common, **producer},
        )
        sender = Sender(settings, Progress("none", self.out, 1.0))
        results: list[Totals | BaseException] = []

        def send() -> None:
            try:
                results.append(sender.run(self._stop_sim))
            except Exception as exc:  # reported by the main thread
                results.append(exc)

        self.say(
            f"simulator started: {s.rate:,.0f} records/s for {s.seconds:g} s, {s.devices} devices"
        )
        self._sim_thread = threading.Thread(target=send, name="simulator", daemon=True)
        self._sim_thread.start()
        view = self._view
        started = self._clock()
        rollout_due = s.rollout_after_s > 0
        while self._sim_thread.is_alive():
            if rollout_due and self._clock() - started >= s.rollout_after_s:
                rollout_due = False
                self._roll_out()
            phase = f"sending {self._clock() - started:4.0f}/{s.seconds:g} s"
            view.show(phase, self._clock(), sender.snapshot(), self._readings())
            self._check_workers()
            self._sim_thread.join(1.0)
        view.release()
        result = results[0]
        if isinstance(result, BaseException):
            raise DemoError(f"the simulator failed: {result!r}")
        self.say(result.describe())
        return result

    def _readings(self) -> list[WorkerReading]:
        return [scrape(p) for p in self.s.ports]

    def _drain(self) -> None:
        view = self._view
        deadline = self._clock() + self.s.drain_timeout_s
        drained = 0  # consecutive readings with no lag: one could predate the last records
        while drained < 2:
            readings = self._readings()
            view.show("draining", self._clock(), None, readings)
            total = combined(readings)
            drained = drained + 1 if all(r.up for r in readings) and total.lag == 0 else 0
            self._check_workers()
            if self._clock() > deadline:
                self.say(f"lag not drained after {self.s.drain_timeout_s:g} s; evaluating anyway")
                break
            time.sleep(1.0)
        view.release()

    def _evaluate(self, bootstrap: str) -> Evaluation:
        self.say("evaluation: reading the outputs ...")
        settings = EvaluateSettings(
            labels=self.s.run_dir / "labels.jsonl",
            bootstrap_servers=bootstrap,
            output_topic=self.s.topics[1],
            report_dir=self.s.report_dir,
            timeout_s=self.s.drain_timeout_s,
        )
        try:
            ev, result, json_path, png_path = evaluate(settings, self.say)
        except TopicMissingError as exc:
            raise DemoError(str(exc)) from None
        self.say("")
        for line in summary_lines(ev):
            self.say(line)
        self.say(f"report: {json_path}")
        self.say(f"figure: {png_path}")
        if result.stop != "complete":
            self.say(f"evaluation stopped early ({result.stop}): the report covers what arrived")
        return ev

    def cleanup(self) -> None:
        """Stops, in order, the simulator, the workers and (if the demo started it) the broker."""
        if self._sim_thread is not None and self._sim_thread.is_alive():
            self.say("stopping the simulator (flushing) ...")
            self._stop_sim.set()
            self._sim_thread.join(60.0)
        if self.workers:
            self.say("stopping the workers (SIGTERM: they commit and leave the group) ...")
            procs = [w.proc for w in self.workers if w.proc is not None]
            codes = processes.stop(procs, 30.0)
            self.say("workers stopped (exit " + ", ".join(map(str, codes)) + ")")
        self.broker.stop_if_started()

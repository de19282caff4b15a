"""Worker start-up and footprint: the file reader (no TensorFlow) against the TensorFlow loader.

    python -m bench.startup [--repeats N] [--model PATH] [--bootstrap-servers HOST:PORT]
                            [--no-install-size] [--workdir DIR]

Side by side in one run, alternating: a worker on an empty 4-partition topic, measured from
process start to the `running` log line (model loaded, Kafka answered, topics checked) and to
`/readyz` 200 (partitions assigned), and its RSS then. The "TensorFlow loader" worker is the
same service with the model loaded the way it was before the file reader (Keras loads the file,
the plan is extracted from the Keras model): `bench.tf_loader_worker`.

Installed size: the serving install (`pip install .` into a throwaway venv, pip and setuptools
not counted), and, from this environment, the distributions TensorFlow and Keras bring in.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

import orjson

from bench import broker, models
from bench.processes import Worker
from bench.service import Cluster, pipeline, run_flags
from producer_sim.cluster import REPO

Loader = Literal["file reader", "TensorFlow loader"]
LOADERS: tuple[Loader, ...] = ("file reader", "TensorFlow loader")
PARTITIONS = 4
MIB = 1024 * 1024


@dataclass(frozen=True)
class Start:
    loader: Loader
    seconds_to_running: float
    seconds_to_ready: float
    rss_mib: float  # at ready, before any key


def start_once(cluster: Cluster, loader: Loader, n: int, timeout_s: float = 180.0) -> Start:
    topic = cluster.topics.create("startup", PARTITIONS)
    p = pipeline(cluster, topic, "at-least-once", PARTITIONS)
    flags = [*run_flags(cluster, p, f"s{n}"), "--model", str(cluster.model)]
    w = Worker.service(flags, cluster.workdir / f"{p.group}.log")
    if loader == "TensorFlow loader":
        w.module = "bench.tf_loader_worker"
    w.start()
    try:
        w.wait_event("running", timeout_s)
        running = time.monotonic() - w.started_at
        w.wait_ready(timeout_s)
        ready = time.monotonic() - w.started_at
        return Start(loader, running, ready, w.rss() / MIB)
    finally:
        w.stop()


def _site_packages_bytes(root: Path, skip: tuple[str, ...] = ("pip", "setuptools")) -> int:
    total = 0
    for entry in root.iterdir():
        if entry.name.split("-")[0] in skip or entry.name.startswith(("_distutils", "__pycache__")):
            continue
        files = [entry] if entry.is_file() else [f for f in entry.rglob("*") if f.is_file()]
        total += sum(f.stat().st_size for f in files)
    return total


def serving_install_mib() -> float:
    """`pip install .` (the serving dependencies only) into a throwaway venv; its size."""
    with tempfile.TemporaryDirectory(prefix="serve-venv-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--no-cache-dir", str(REPO)], check=True, cwd=tmp)
        (site,) = (venv / "lib").glob("python*/site-packages")
        return _site_packages_bytes(site) / MIB


def _closure(names: list[str]) -> set[str]:
    """Installed distributions `names` need, themselves included (markers of this machine)."""
    from packaging.requirements import Requirement  # noqa: PLC0415

    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def _dist_bytes(name: str) -> int:
    paths = [Path(str(f.locate())) for f in metadata.distribution(name).files or []]
    return sum(path.stat().st_size for path in paths if path.is_file())


def keras_extra_mib() -> float:
    """What TensorFlow and Keras add over the serving dependencies, in this environment."""
    serving = _closure(["confluent-kafka", "numpy", "orjson", "prometheus-client", "h5py"])
    extra = _closure(["tensorflow", "keras"]) - serving
    return sum(_dist_bytes(name) for name in extra) / MIB


@contextmanager
def _broker(given: str | None, workdir: Path) -> Iterator[str]:
    if given:
        yield given
    else:
        with broker.local_broker(workdir / "broker") as bootstrap:
            yield bootstrap


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="starts per loader")
    parser.add_argument("--model", type=Path, help="model file (default: random weights)")
    parser.add_argument("--bootstrap-servers", help="use this broker instead of a local one")
    parser.add_argument("--no-install-size", action="store_true")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    given = args.workdir
    scope = nullcontext(str(given)) if given else tempfile.TemporaryDirectory(prefix="bench-")
    with scope as folder:
        workdir = Path(folder)
        workdir.mkdir(parents=True, exist_ok=True)
        model = args.model or models.save_streaming_model(workdir / "model.keras")
        starts: list[Start] = []
        with _broker(args.bootstrap_servers, workdir) as bootstrap:
            topics = broker.Topics(bootstrap)
            cluster = Cluster(bootstrap, topics, workdir, model)
            try:
                for n in range(args.repeats):
                    for loader in LOADERS if n % 2 == 0 else LOADERS[::-1]:
                        starts.append(start_once(cluster, loader, len(starts)))
                        print(orjson.dumps(asdict(starts[-1])).decode(), file=sys.stderr)
            finally:
                topics.delete_all()
    result: dict[str, object] = {"starts": [asdict(s) for s in starts]}
    print(f"{'loader':<18} {'to running s':>12} {'to ready s':>10} {'RSS at ready MiB':>17}")
    for loader in LOADERS:
        mine = [s for s in starts if s.loader == loader]
        row = [statistics.median(getattr(s, f) for s in mine) for f in ("seconds_to_running",
               "seconds_to_ready", "rss_mib")]  # fmt: skip
        result[loader] = dict(zip(("to_running_s", "to_ready_s", "rss_mib"), row, strict=True))
        print(f"{loader:<18} {row[0]:>12.2f} {row[1]:>10.2f} {row[2]:>17.0f}")
    print(f"(medians of {args.repeats} starts each, alternating)")
    if not args.no_install_size:
        serve, extra = serving_install_mib(), keras_extra_mib()
        result["install_mib"] = {"serving": serve, "tensorflow_and_keras_add": extra}
        print(f"installed: serving {serve:.0f} MiB; TensorFlow and Keras add {extra:.0f} MiB")
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main(sys.argv[1:]))

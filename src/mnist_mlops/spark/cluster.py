"""A local Spark standalone cluster: a master and one-core workers on 127.0.0.1.

Started from pyspark's own ``bin/spark-class`` (pip's pyspark has no ``sbin`` scripts), so it
needs nothing but this environment and Java:

    kedro spark-cluster up
    SPARK_MASTER=spark://127.0.0.1:7077 kedro run --env azure \
        --params training.strategies=distributed
    kedro spark-cluster down
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mnist_mlops.runtime.launcher import Launcher, ProcessNotReady, log_tail

STATE_DIR = Path(".spark-cluster")


@dataclass
class Cluster:
    """Where a cluster's master listens and where its processes' pids and logs are kept."""

    state_dir: Path = STATE_DIR
    port: int = 7077
    webui_port: int = 8080

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def status(self) -> dict | None:
        """The master's view (``aliveworkers``, ``workers``...), or None when it is down.

        A master still starting may answer ``/json/`` with its HTML page: not up yet either.
        """
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.webui_port}/json/", timeout=2
            ) as r:
                return json.load(r)
        except (OSError, ValueError):
            return None

    def _process(self, name: str) -> Launcher:
        folder = self.state_dir
        return Launcher(f"Spark {name}", folder / f"{name}.log", folder / f"{name}.pid", True, 10)

    def _spawn(self, name: str, arguments: list[str]) -> None:
        import pyspark

        spark_home = Path(pyspark.__file__).parent
        env = {
            **os.environ,
            "SPARK_HOME": str(spark_home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_WORKER_DIR": str((self.state_dir / f"{name}-work").resolve()),
        }
        self._process(name).start([str(spark_home / "bin" / "spark-class"), *arguments], env)

    def _wait(self, condition: Callable[[dict], bool], what: str, timeout_s: float) -> dict:
        """The master's view once ``condition`` holds; stops the cluster if it does not."""

        def ready() -> bool:
            state = self.status()
            return state is not None and condition(state)

        try:
            self._process("master").wait_until(ready, timeout_s, poll_s=0.5)
        except ProcessNotReady:
            logs = sorted(self.state_dir.glob("*.log"))
            tail = "\n".join(log_tail(log, 5) for log in logs)
            self.down()
            raise ProcessNotReady(
                f"Spark cluster: {what} not within {timeout_s} s. Last log lines:\n{tail}"
            ) from None
        return self.status() or {}

    def up(self, workers: int = 2, cores: int = 1, memory: str = "2g", timeout_s: float = 90):
        """Start the master and ``workers`` workers; return once all of them are registered."""
        if self.status() is not None:
            raise RuntimeError(
                f"a Spark master already answers on port {self.webui_port}: run `down` first"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "master",
            ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(self.port), "--webui-port", str(self.webui_port)],
        )  # fmt: skip
        self._wait(lambda state: True, "master answering", timeout_s)
        for index in range(workers):
            self._spawn(
                f"worker-{index}",
                ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                 "--cores", str(cores), "--memory", memory, "--webui-port", "0", self.master_url],
            )  # fmt: skip
        return self._wait(
            lambda state: state.get("aliveworkers", 0) >= workers,
            f"{workers} workers registered",
            timeout_s,
        )

    def worker_pids(self) -> list[int]:
        return [int(p.read_text()) for p in sorted(self.state_dir.glob("worker-*.pid"))]

    def down(self) -> None:
        """Stop every process of the cluster (workers first), whatever state it is in."""
        for pid_file in sorted(self.state_dir.glob("*.pid"), reverse=True):  # workers, master
            self._process(pid_file.stem).stop()

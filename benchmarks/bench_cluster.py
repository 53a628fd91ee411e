"""``modelai predict --cluster local:2`` against the plain command on the same rasters and machine.

Eight copies of a synthetic 2000² scene and the U-Net (base width 16, depth 4) of
`bench_inference.py` (cached in ``~/.cache/modelai-bench``), predicted in turns by the plain command
and by the cluster command, each a fresh process with its own data folder and output folder. The
point is not a gain on two cores (two workers of one torch thread each against one process of two
threads) but what the cluster costs: from each job's result, the seconds the rasters took on the
workers, the wall time beyond them, and the cluster's start-up measured on its own (a fresh
process that starts the workers, loads the engine on them and stops them): what is left per
raster is the cost of one task (scheduling, the path checks, results and the job records).

    python benchmarks/bench_cluster.py                       # 8 x 2000², 2 rounds: minutes on 2 cores
    python benchmarks/bench_cluster.py --size 1000 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_inference import model, scene

WORKERS = 2
# The cluster's fixed cost, in a fresh process: start the workers, load the engine on them, stop them.
STARTUP_CHILD = f"""
import time
started = time.perf_counter()
from engine.cluster.connect import open_client, parse_address
with open_client(parse_address("local:{WORKERS}")) as client:
    client.run(__import__, "engine.inference.predict")
print(time.perf_counter() - started)
"""


@dataclass
class Run:
    """One command: its wall time and the seconds each raster took inside it (from the job's result)."""

    wall: float
    raster_seconds: list[float]

    def overhead_per_raster(self, parallel: int) -> float:
        """Wall time not spent predicting rasters (``parallel`` at a time), per raster."""
        return (self.wall - sum(self.raster_seconds) / parallel) / len(self.raster_seconds)


def predict(model_path: Path, rasters: Path, work: Path, cluster: str | None) -> Run:
    """Runs ``modelai predict`` in a fresh process and reads the job it recorded."""
    home, output = work / "home", work / "out"
    command = [sys.executable, "-m", "engine", "--home", str(home), "-q", "predict", str(model_path)]
    command += [str(rasters), "-o", str(output), "--json"]
    command += ["--cluster", cluster] if cluster else []
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"benchmark command failed ({done.returncode}): {done.stderr.strip()}")
    result = json.loads(done.stdout)
    shutil.rmtree(work)
    return Run(wall, [entry["seconds"] for entry in result["rasters"]])


def cluster_startup() -> float:
    done = subprocess.run([sys.executable, "-c", STARTUP_CHILD], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def cpu_text() -> str:
    flags = Path("/proc/cpuinfo").read_text().split("flags", 1)[-1].split("\n", 1)[0].split()
    simd = sorted(flag for flag in flags if flag.startswith(("avx2", "avx512", "amx")))
    return f"{os.cpu_count()} threads, {' '.join(simd) or 'no AVX2'}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=2000, help="scene side in pixels (default 2000)")
    parser.add_argument("--rasters", type=int, default=8, help="copies of the scene (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="plain and cluster runs in turns (default 2)")
    args = parser.parse_args()
    model_path, source = model(), scene(args.size)
    load = os.getloadavg()[0]
    print(f"CPU: {cpu_text()}; load average {load:.1f} at the start")
    print(f"{args.rasters} x {args.size}² rasters; cluster: local:{WORKERS}")
    ratios, added = [], []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as folder:
        rasters = Path(folder) / "rasters"
        rasters.mkdir()
        for index in range(args.rasters):
            shutil.copyfile(source, rasters / f"scene{index}.tif")
        for round_ in range(args.rounds):
            plain = predict(model_path, rasters, Path(folder) / "plain", None)
            cluster = predict(model_path, rasters, Path(folder) / "cluster", f"local:{WORKERS}")
            startup = cluster_startup()
            plain_overhead, cluster_overhead = (
                plain.overhead_per_raster(1),
                cluster.overhead_per_raster(WORKERS),
            )
            ratios.append(plain.wall / cluster.wall)
            added.append(cluster_overhead - plain_overhead - startup / args.rasters)
            print(
                f"round {round_ + 1}: plain {plain.wall:6.1f} s (rasters {sum(plain.raster_seconds):6.1f} s, "
                f"{statistics.median(plain.raster_seconds):5.2f} s each); cluster {cluster.wall:6.1f} s "
                f"(rasters {sum(cluster.raster_seconds):6.1f} s on {WORKERS} workers, "
                f"{statistics.median(cluster.raster_seconds):5.2f} s each); wall beyond the rasters per "
                f"raster: plain {plain_overhead:5.2f} s, cluster {cluster_overhead:5.2f} s; cluster start-up "
                f"(start, load the engine on the workers, stop) {startup:5.1f} s",
                flush=True,
            )
    print(
        "plain / cluster wall time (speed-up of the cluster), per round: "
        f"{', '.join(f'{r:.2f}' for r in ratios)}; per-raster overhead the cluster adds beyond its start-up: "
        f"{', '.join(f'{a:+.2f} s' for a in added)}"
    )


if __name__ == "__main__":
    main()

"""Freed activations of a network are reused (few page faults) and handed back after, on glibc."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.host_memory import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="malloc tuning only applies to glibc (Linux)")

# Runs in a fresh process: malloc settings are per process and must come before threads allocate.
# The passes run in a thread, as in the window, whose malloc arena must behave too.
CHILD = """
import json, resource, sys, threading
from engine.host_memory import keep_freed_memory, release_freed_memory
tuned = sys.argv[1] == "tuned" and keep_freed_memory()
import torch
from engine.models import build_model
torch.manual_seed(0)
network = build_model("unet", {"in_channels": 4, "num_classes": 3, "base_width": 16, "depth": 4}).eval()
tile = torch.randn(1, 4, 256, 256)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def rss_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) // 1024
result = {"tuned": tuned}
def work():
    with torch.inference_mode():
        network(tile)
        before = faults()
        for _ in range(5):
            network(tile)
        result["faults"] = faults() - before
    result["rss_kept"] = rss_mb()
    release_freed_memory()
    result["rss_released"] = rss_mb()
thread = threading.Thread(target=work)
thread.start()
thread.join()
print(json.dumps(result))
"""


def run_child(mode: str) -> dict:
    output = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    return json.loads(output.stdout)


def test_repeated_forward_passes_reuse_memory_and_release_it_after():
    untuned, tuned = run_child("default"), run_child("tuned")
    assert tuned["tuned"]
    assert tuned["faults"] * 5 < untuned["faults"], (tuned, untuned)
    assert tuned["rss_kept"] - tuned["rss_released"] >= 20, tuned

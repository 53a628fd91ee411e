"""``modelai --self-test``: check this installation end to end and print a PASS/FAIL list.

Exit code 0 when every check passed, 3 when any failed, so a script or an installer can tell.
"""

from __future__ import annotations

import argparse
import sys

from engine import selftest
from engine.progress import CancelToken

EXIT_SELF_TEST_FAILED = 3


def run(args: argparse.Namespace, cancel: CancelToken) -> int:
    """Prints each check as it finishes, then a summary line."""
    print(selftest.header(), flush=True)
    report = selftest.run_self_test(lambda result: print(result.line(), flush=True), cancel=cancel)
    print(report.summary(), flush=True)
    if not report.passed:
        print("modelai: the self-test failed; send the lines above with a support request.", file=sys.stderr)
        return EXIT_SELF_TEST_FAILED
    return 0

"""pytest setup of tests/ocpi-peer: prints the corrections of the library's schemas to OCPI
2.2.1 in effect (cpo.SPEC_CORRECTIONS) and which of them evflex's traffic met, so a green run
still says where the library and the specification disagree."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    cpo = sys.modules.get("cpo")
    if cpo is None:
        return
    tr = terminalreporter
    tr.write_line(f"extrawest-ocpi {cpo.LIBRARY_VERSION}: schema fields corrected to OCPI 2.2.1 (cpo.py):")
    for c in cpo.SPEC_CORRECTIONS:
        tr.write_line(f"  - {c.model.__name__}: library {c.library}; OCPI: {c.spec}")
    seen = getattr(sys.modules.get("test_conformance"), "DEVIATIONS_SEEN", {})
    for deviation in sorted(seen):
        tr.write_line(f"  met {deviation} in: {'; '.join(sorted(seen[deviation]))}")

"""A pytest plugin for one run of tests/scenarios on other copies of the seed diagrams.

``python -m pytest -p tests.browser.templated_processes tests/scenarios`` with ``QIFU_SCENARIO_PROCESSES=DIR``
makes the scenario tests deploy ``DIR/<key>.bpmn`` instead of ``processes/<key>.bpmn``: the browser test of
the element templates saves the diagrams bpmn-js produced after applying every template there, then runs
the unchanged scenario tests on them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    import tests.scenarios.conftest as scenarios

    folder = Path(os.environ["QIFU_SCENARIO_PROCESSES"])
    assert folder.is_dir(), folder
    scenarios.PROCESSES = folder  # deploy_process() and the modules importing PROCESSES read it from here

"""The root of runs that every reading-command test reads (built once per session)."""

import pytest

from tests.reports.test_root import Root, build


@pytest.fixture(scope="session")
def reports_root(tmp_path_factory, dataset_root) -> Root:
    return build(tmp_path_factory.mktemp("reports"), dataset_root)

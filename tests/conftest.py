"""Shared fixtures."""

import pytest
import torch as th


@pytest.fixture(scope="module")
def one_torch_thread():
    """
    One torch thread for a test module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``, or requested by
    a module-scoped fixture), restored afterwards: the networks here are tiny, and the machine is shared.
    """
    previous = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(previous)

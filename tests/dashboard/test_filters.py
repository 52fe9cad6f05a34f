"""The dashboard's Jinja filters."""
from __future__ import annotations

import pytest

from app.dashboard.filters import parameters


@pytest.mark.parametrize(("billions", "shown"), [
    (0.000162, "162K"), (0.137, "137M"), (0.5, "500M"), (1.2, "1.2B"), (7.6, "7.6B"), (16, "16B"), (70.6, "70.6B"),
    (405, "405B"), (0.0009999, "1M"), (0.00000012, "120"), (None, "—"),
])
def test_parameters_use_k_m_b_like_ollama(billions, shown):
    assert parameters(billions) == shown

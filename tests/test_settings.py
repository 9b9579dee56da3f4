"""Enum-like settings are Literal types: a wrong value is refused at start with the choices, any case is accepted."""

import pytest
from pydantic import ValidationError

from aiaas.settings import Settings


@pytest.mark.parametrize(
    ("env", "field", "value"),
    [
        ("AIAAS_LOG_LEVEL", "log_level", "debug"),
        ("AIAAS_GOVERNANCE", "governance", "off"),
        ("AIAAS_BUDGET_MODE", "budget_mode", "db"),
        ("AIAAS_REDIS_FAILURE_MODE", "redis_failure_mode", "open"),
        ("AIAAS_PYTHON_PLACEMENT", "python_placement", "thread"),
    ],
)
def test_enum_settings_accept_any_case(monkeypatch: pytest.MonkeyPatch, env: str, field: str, value: str) -> None:
    monkeypatch.setenv(env, value.upper())
    assert getattr(Settings(), field) == value


@pytest.mark.parametrize(
    ("env", "choices"),
    [
        ("AIAAS_GOVERNANCE", "'db' or 'off'"),
        ("AIAAS_REDIS_FAILURE_MODE", "'closed' or 'open'"),
        ("AIAAS_BUDGET_MODE", "'auto', 'memory' or 'db'"),
    ],
)
def test_a_wrong_enum_setting_names_the_choices(monkeypatch: pytest.MonkeyPatch, env: str, choices: str) -> None:
    monkeypatch.setenv(env, "sometimes")
    with pytest.raises(ValidationError) as err:
        Settings()
    assert choices in str(err.value)

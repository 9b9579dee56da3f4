"""Fixtures of the client tests: ``aiaas.client.Client`` talking to the app in-process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from v2kit import ADMIN_KEY, AppTransport, write_upper_model

from aiaas.client import Client
from aiaas.server.app import create_app


@pytest.fixture
def app_client(make_settings, mlp_model: str, repo) -> Iterator[TestClient]:
    write_upper_model(repo.root)
    with TestClient(create_app(make_settings(governance="off")), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def v2(app_client: TestClient) -> Iterator[Client]:
    with Client("http://testserver", api_key=ADMIN_KEY, transport=AppTransport(app_client)) as c:
        yield c

"""The catalog's built-in LLM (Gemma-3-270M from the pip GGUF packages): built once, served through V2 and the
OpenAI-compatible chat API with the official SDK (streaming, usage)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from aiaas.catalog.builder import build
from aiaas.catalog.registry import all_specs
from aiaas.registry import ModelRepository
from aiaas.server.app import create_app
from aiaas.settings import Settings

ADMIN_KEY = "test-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
NAME = "gemma-3-270m"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    spec = all_specs()[NAME]
    if spec.requires.missing():
        pytest.skip(f"needs: {spec.requires.missing()}")
    home = tmp_path_factory.mktemp("llm") / "home"
    repo = ModelRepository(home / "models")
    repo.ensure()
    st = build(spec, repo, quick=True, progress=lambda f, m: None)
    assert st.state == "built", st.detail
    assert st.metrics and st.metrics["perplexity"] < 100  # a real language model, not noise
    app = create_app(Settings(home=home, admin_key=ADMIN_KEY, catalog="none", governance="off"))
    with TestClient(app) as c:
        yield c


def test_readme_example_continues_the_text(client: TestClient) -> None:
    r = client.post(f"/v2/models/{NAME}/infer", json=json.loads(all_specs()[NAME].example), headers=AUTH)
    assert r.status_code == 200, r.text
    text = r.json()["outputs"][0]["data"][0]
    assert len(text.split()) >= 3


def test_official_sdk_streams_a_chat_completion_with_usage(client: TestClient) -> None:
    openai = pytest.importorskip("openai")

    class Transport(httpx.BaseTransport):  # the SDK's requests go to the in-process app
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            r = client.request(request.method, str(request.url), content=request.content, headers=request.headers)
            return httpx.Response(r.status_code, headers=r.headers, content=r.content)

    sdk = openai.OpenAI(
        base_url="http://testserver/v1", api_key=ADMIN_KEY, http_client=httpx.Client(transport=Transport())
    )
    assert NAME in [m.id for m in sdk.models.list().data]
    stream = sdk.chat.completions.create(
        model=NAME,
        messages=[{"role": "user", "content": "Name a color."}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    assert "".join(pieces).strip()
    assert usage is not None and 0 < usage.completion_tokens <= 8 and usage.prompt_tokens > 0

def test_smoke(client):
    print([m.id for m in client.models.list().data])
    r = client.chat.completions.create(model="tiny-llm", messages=[{"role": "user", "content": "hi"}], max_tokens=8, temperature=0)
    print(r)
    s = client.chat.completions.create(model="tiny-llm", messages=[{"role": "user", "content": "hi"}], max_tokens=8, temperature=0, stream=True, stream_options={"include_usage": True})
    for c in s:
        print(c)
    print(client.completions.create(model="tiny-llm", prompt="Hello", max_tokens=5, logprobs=2))
    print(client.embeddings.create(model="tiny-embed", input=["a", "bb"]).data[0].embedding[:3])

"""Drives Skein's /v1 routes with the official OpenAI Python SDK and prints what it parsed.

Run by the Rust test `sdk::the_official_openai_sdk_works`, which starts Skein and a mock
upstream and passes BASE and KEY in the environment.
"""
import json
import os

import openai

base = os.environ["BASE"] + "/v1"
client = openai.OpenAI(base_url=base, api_key=os.environ["KEY"], max_retries=0)
messages = [{"role": "user", "content": "hello from the sdk"}]
out = {}

plain = client.chat.completions.create(model="gpt-test", messages=messages)
out["plain"] = plain.choices[0].message.content
out["plain_prompt_tokens"] = plain.usage.prompt_tokens

stream = client.chat.completions.create(model="gpt-test", messages=messages, stream=True)
chunks = list(stream)
out["stream"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
out["stream_usage_seen"] = any(c.usage is not None for c in chunks)

stream = client.chat.completions.create(
    model="gpt-test", messages=messages, stream=True, stream_options={"include_usage": True}
)
chunks = list(stream)
out["stream_usage_completion"] = chunks[-1].usage.completion_tokens
out["stream_usage_last_has_no_choices"] = chunks[-1].choices == []

out["models"] = [m.id for m in client.models.list().data]

try:
    client.chat.completions.create(model="gpt-unknown", messages=messages)
except openai.APIStatusError as e:
    out["unpriced"] = {"status": e.status_code, "code": e.code}

try:
    openai.OpenAI(base_url=base, api_key="sk-wrong", max_retries=0).models.list()
except openai.AuthenticationError as e:
    out["bad_key"] = {"status": e.status_code, "code": e.code}

print(json.dumps(out))

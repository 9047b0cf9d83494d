"""Asks Skein's /v1/messages/count_tokens through the official Anthropic Python SDK and prints
what it parsed.

Run by the Rust test `endpoints::the_official_anthropic_sdk_counts_tokens` (BASE and KEY in the
environment).
"""
import json
import os

import anthropic

client = anthropic.Anthropic(base_url=os.environ["BASE"], api_key=os.environ["KEY"], max_retries=0)
messages = [{"role": "user", "content": "hello from claude sdk"}]
out = {}

count = client.messages.count_tokens(model="text-test", system="be brief", messages=messages)
out["input_tokens"] = count.input_tokens

try:
    client.messages.count_tokens(model="no-such-model", messages=messages)
except anthropic.NotFoundError as e:
    out["unknown"] = {"status": e.status_code, "type": e.body["error"]["type"]}

print(json.dumps(out))

"""Drives Skein's /v1/messages with the official Anthropic Python SDK and prints what it parsed.

Run by the Rust test `sdk::the_official_anthropic_sdk_works` (BASE and KEY in the environment);
the upstream behind Skein is the mock OpenAI server, so this also exercises the conversion.
"""
import json
import os

import anthropic

client = anthropic.Anthropic(base_url=os.environ["BASE"], api_key=os.environ["KEY"], max_retries=0)
messages = [{"role": "user", "content": "hello from claude sdk"}]
out = {}

msg = client.messages.create(model="gpt-test", max_tokens=64, system="be brief", messages=messages)
out["text"] = msg.content[0].text
out["stop_reason"] = msg.stop_reason
out["input_tokens"] = msg.usage.input_tokens
out["output_tokens"] = msg.usage.output_tokens

with client.messages.stream(model="gpt-test", max_tokens=64, messages=messages) as stream:
    out["stream_text"] = "".join(stream.text_stream)
    final = stream.get_final_message()
out["stream_output_tokens"] = final.usage.output_tokens
out["stream_stop_reason"] = final.stop_reason

try:
    client.messages.create(model="gpt-unknown", max_tokens=5, messages=messages)
except anthropic.APIStatusError as e:
    out["unpriced"] = {"status": e.status_code, "type": e.body["error"]["type"]}

try:
    anthropic.Anthropic(base_url=os.environ["BASE"], api_key="sk-wrong", max_retries=0).messages.create(
        model="gpt-test", max_tokens=5, messages=messages
    )
except anthropic.AuthenticationError as e:
    out["bad_key"] = {"status": e.status_code, "type": e.body["error"]["type"]}

print(json.dumps(out))

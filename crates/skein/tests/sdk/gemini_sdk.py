"""Drives Skein's Gemini-native routes with the official google-genai SDK and prints what it
parsed. Run by the Rust test `sdk::the_official_gemini_sdk_works` (BASE and KEY in the
environment); the upstream behind Skein is the mock OpenAI server.
"""
import json
import os

from google import genai
from google.genai import errors, types

client = genai.Client(api_key=os.environ["KEY"], http_options=types.HttpOptions(base_url=os.environ["BASE"]))
config = types.GenerateContentConfig(system_instruction="be brief", max_output_tokens=40)
out = {}

r = client.models.generate_content(model="gpt-test", contents="hello from gemini sdk", config=config)
out["text"] = r.text
out["prompt_tokens"] = r.usage_metadata.prompt_token_count
out["output_tokens"] = r.usage_metadata.candidates_token_count
out["finish_reason"] = str(r.candidates[0].finish_reason)

chunks = list(client.models.generate_content_stream(model="gpt-test", contents="hello from gemini sdk", config=config))
out["stream_text"] = "".join(c.text or "" for c in chunks)
out["stream_output_tokens"] = [c.usage_metadata.candidates_token_count for c in chunks if c.usage_metadata][-1]

try:
    client.models.generate_content(model="gpt-unknown", contents="x")
except errors.ClientError as e:
    out["unpriced"] = {"code": e.code, "status": e.status}

# Keep the client referenced: a dropped genai.Client closes its HTTP client at once.
wrong = genai.Client(api_key="sk-wrong", http_options=types.HttpOptions(base_url=os.environ["BASE"]))
try:
    wrong.models.generate_content(model="gpt-test", contents="x")
except errors.ClientError as e:
    out["bad_key"] = {"code": e.code, "status": e.status}

print(json.dumps(out))

"""Drives Skein's POST /v1/responses with the official OpenAI Python SDK and prints what it
parsed: a whole response, a stream through the SDK's own stream helper (which checks the
event sequence as it rebuilds the response), and a function tool round trip, whole and
streamed; and the kept state (previous_response_id, retrieve, input items, delete, background
mode).

Run by the Rust test `responses::the_official_sdk_speaks_the_responses_api`, which starts Skein
and a mock upstream and passes BASE and KEY in the environment.
"""
import json
import os
import time

import openai

client = openai.OpenAI(base_url=os.environ["BASE"] + "/v1", api_key=os.environ["KEY"], max_retries=0)
out = {}

whole = client.responses.create(
    model="gpt-test", instructions="be brief", input="hello from responses", max_output_tokens=50
)
out["text"] = whole.output_text
out["status"] = whole.status
out["id_prefix"] = whole.id[:5]
out["input_tokens"] = whole.usage.input_tokens
out["output_tokens"] = whole.usage.output_tokens
out["total_tokens"] = whole.usage.total_tokens

kinds = []
with client.responses.stream(model="gpt-test", instructions="be brief", input="hello from responses") as stream:
    for event in stream:
        kinds.append(event.type)
    final = stream.get_final_response()
out["stream_text"] = final.output_text
out["stream_first"] = kinds[0]
out["stream_last"] = kinds[-1]
out["stream_deltas"] = kinds.count("response.output_text.delta")
out["stream_output_tokens"] = final.usage.output_tokens

# Raw events with stream=True parse into the SDK's typed events too.
raw = list(client.responses.create(model="gpt-test", input="raw events please", stream=True))
out["raw_text"] = "".join(e.delta for e in raw if e.type == "response.output_text.delta")
out["raw_sequence_ok"] = [e.sequence_number for e in raw] == list(range(len(raw)))

tools = [{
    "type": "function",
    "name": "weather",
    "description": "Weather now",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}]
asked = client.responses.create(model="gpt-test", input="weather in Paris", tools=tools)
call = next(item for item in asked.output if item.type == "function_call")
out["call_name"] = call.name
out["call_args"] = json.loads(call.arguments)
# The documented pattern: the model's output items go back as input, then the tool's output.
history = [{"role": "user", "content": "weather in Paris"}] + asked.output
history.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny 21C"})
answered = client.responses.create(model="gpt-test", input=history, tools=tools)
out["after_tool"] = answered.output_text
out["after_tool_status"] = answered.status

with client.responses.stream(model="gpt-test", input="weather in Paris", tools=tools) as stream:
    arg_deltas = sum(1 for e in stream if e.type == "response.function_call_arguments.delta")
    final = stream.get_final_response()
call = next(item for item in final.output if item.type == "function_call")
out["stream_call_args"] = json.loads(call.arguments)
out["stream_arg_deltas"] = arg_deltas

# Kept state: a conversation continued by previous_response_id, read back, listed, deleted.
first = client.responses.create(model="gpt-test", input="my name is Ada")
second = client.responses.create(model="gpt-test", input="what is my name", previous_response_id=first.id)
out["continued"] = second.output_text
out["continued_previous"] = second.previous_response_id
out["retrieved"] = client.responses.retrieve(second.id).output_text
out["input_items"] = [item.content[0].text for item in client.responses.input_items.list(second.id)]
out["deleted"] = client.responses.delete(first.id) is None
try:
    client.responses.retrieve(first.id)
except openai.NotFoundError as e:
    out["after_delete"] = {"status": e.status_code, "code": e.code}
try:
    client.responses.create(model="gpt-test", input="x", previous_response_id="resp_1")
except openai.NotFoundError as e:
    out["previous"] = {"status": e.status_code, "code": e.code}
# Background mode: queued at once, then polled until it ends.
queued = client.responses.create(model="gpt-test", input="in the background", background=True)
out["background_first"] = queued.status
polled = queued
for _ in range(200):
    if polled.status not in ("queued", "in_progress"):
        break
    time.sleep(0.05)
    polled = client.responses.retrieve(queued.id)
out["background_status"] = polled.status
out["background_text"] = polled.output_text
try:
    client.responses.create(model="gpt-test", input="x", tools=[{"type": "web_search"}])
except openai.BadRequestError as e:
    out["web_search"] = {"status": e.status_code, "code": e.code}

print(json.dumps(out))

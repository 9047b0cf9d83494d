"""Drives Skein's embeddings, audio, images and completions routes with the official OpenAI
Python SDK and prints what it parsed.

Run by the Rust test `endpoints::the_official_openai_sdk_parses_every_endpoint`, which starts
Skein and a mock upstream and passes BASE and KEY in the environment.
"""
import json
import os

import openai

client = openai.OpenAI(base_url=os.environ["BASE"] + "/v1", api_key=os.environ["KEY"], max_retries=0)
out = {}

# No encoding_format: the SDK asks for base64 and decodes it itself.
emb = client.embeddings.create(model="emb-test", input=["the quick brown fox", "jumps"])
out["embeddings"] = [d.embedding for d in emb.data]
out["embedding_tokens"] = emb.usage.prompt_tokens
out["embedding_float"] = client.embeddings.create(
    model="emb-test", input="one two", encoding_format="float", dimensions=4
).data[0].embedding

audio = bytes(i * 7 % 251 for i in range(40_000))
t = client.audio.transcriptions.create(model="whisper-test", file=("talk.mp3", audio, "audio/mpeg"))
out["transcript"] = t.text
out["transcript_text"] = client.audio.transcriptions.create(
    model="whisper-test", file=("talk.mp3", audio), response_format="text"
)
verbose = client.audio.transcriptions.create(
    model="whisper-test", file=("talk.mp3", audio), response_format="verbose_json"
)
out["transcript_verbose"] = {"text": verbose.text, "language": verbose.language}

img = client.images.generate(model="img-test", prompt="a red fox", n=2)
out["image_urls"] = [d.url for d in img.data]

speech = client.audio.speech.create(model="tts-test", voice="alloy", input="hello there", response_format="wav")
out["speech_len"] = len(speech.content)
out["speech_head"] = speech.content[:4].decode("latin-1")

comp = client.completions.create(model="text-test", prompt="say this back", max_tokens=10)
out["completion"] = comp.choices[0].text
out["completion_tokens"] = comp.usage.completion_tokens

try:
    client.embeddings.create(model="no-such-model", input="x")
except openai.NotFoundError as e:
    out["unknown"] = {"status": e.status_code, "code": e.code}

print(json.dumps(out))

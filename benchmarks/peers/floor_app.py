"""The floor: a bare ASGI app, no framework, no validation: orjson in, onnxruntime, orjson out.

    FLOOR_MODEL=model.onnx FLOOR_FEATURES=a,b,c uvicorn peers.floor_app:app --app-dir benchmarks

POST a JSON object (one record) or a list of objects (a batch), keyed by feature name; any GET is 200.
"""

import os

import numpy as np
import onnxruntime
import orjson

FEATURES = os.environ["FLOOR_FEATURES"].split(",")
SESSION = onnxruntime.InferenceSession(os.environ["FLOOR_MODEL"], providers=["CPUExecutionProvider"])
INPUT = SESSION.get_inputs()[0].name
HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    while scope["type"] == "lifespan":  # nothing to set up or tear down
        message = await receive()
        await send({"type": f"{message['type']}.complete"})
        if message["type"] == "lifespan.shutdown":
            return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "GET":
        payload, status = b'{"ready": true}', 200
    else:
        data = orjson.loads(body)
        records = [data] if isinstance(data, dict) else data
        labels, probabilities = SESSION.run(None, {INPUT: np.array([[r[f] for f in FEATURES] for r in records], dtype=np.float32)})
        out = {"label": labels.tolist(), "probabilities": probabilities.tolist()}
        payload, status = orjson.dumps({k: v[0] for k, v in out.items()} if isinstance(data, dict) else out), 200
    await send({"type": "http.response.start", "status": status, "headers": HEADERS})
    await send({"type": "http.response.body", "body": payload})

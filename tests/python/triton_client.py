"""Classifies test images with the real Triton HTTP client against a wardrobe server, with the
client's default settings (binary tensor data both ways) and with JSON, with and without the
classification extension; prints one JSON object with what came back.

usage: triton_client.py HOST:PORT IMAGES.u8 ROWS COLS
"""
import json
import sys

import numpy as np
import tritonclient.http as http

url, path, rows, cols = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
images = np.fromfile(path, dtype=np.uint8).reshape(-1, rows, cols)
client = http.InferenceServerClient(url)


def infer(binary, class_count=0):
    tensor = http.InferInput("images", list(images.shape), "UINT8")
    if binary is None:  # the client's defaults, as a new user writes it
        tensor.set_data_from_numpy(images)
        return client.infer("wardrobe", [tensor])
    tensor.set_data_from_numpy(images, binary_data=binary)
    output = http.InferRequestedOutput("probabilities", binary_data=binary, class_count=class_count)
    return client.infer("wardrobe", [tensor], outputs=[output])


def strings(result):
    text = lambda s: s.decode() if isinstance(s, bytes) else s
    return [[text(s) for s in row] for row in result.as_numpy("probabilities")]


print(json.dumps({
    "live": client.is_server_live(),
    "extensions": client.get_server_metadata()["extensions"],
    "default": infer(None).as_numpy("probabilities").tolist(),
    "json": infer(False).as_numpy("probabilities").tolist(),
    "classes_binary": strings(infer(True, 3)),
    "classes_json": strings(infer(False, 3)),
}))

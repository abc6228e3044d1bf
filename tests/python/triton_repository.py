"""Drives a wardrobe model repository with the real Triton HTTP client: API keys, the repository
index, per-version inference, unload and load; prints one JSON object with what came back.

usage: triton_repository.py HOST:PORT KEY IMAGES.u8 ROWS COLS MODEL_TO_UNLOAD
"""
import json
import sys

import numpy as np
import tritonclient.http as http
from tritonclient.utils import InferenceServerException

url, key, path, rows, cols, unload = sys.argv[1:7]
images = np.fromfile(path, dtype=np.uint8).reshape(-1, int(rows), int(cols))
client = http.InferenceServerClient(url)
auth = {"Authorization": f"Bearer {key}"}


def refused(call):
    """The status of a call the server refuses, or None when it answers."""
    try:
        call()
        return None
    except InferenceServerException as e:
        return e.status()


def probabilities(name, version=""):
    tensor = http.InferInput("images", list(images.shape), "UINT8")
    tensor.set_data_from_numpy(images)
    result = client.infer(name, [tensor], model_version=version, headers=auth)
    return {"version": result.get_response()["model_version"],
            "probabilities": result.as_numpy("probabilities").tolist()}


index = client.get_model_repository_index(headers=auth)
answers = {f"{row['name']}/{row['version']}": probabilities(row["name"], row["version"])
           for row in index if row["state"] == "READY"}
latest = {row["name"]: probabilities(row["name"]) for row in index if row["state"] == "READY"}
client.unload_model(unload, headers=auth)
after_unload = {
    "ready": client.is_model_ready(unload, headers=auth),
    "index": client.get_model_repository_index(headers=auth),
    "infer_status": refused(lambda: probabilities(unload)),
}
client.load_model(unload, headers=auth)
print(json.dumps({
    "live_without_key": client.is_server_live(),
    "ready_without_key": client.is_server_ready(),
    "index_without_key": refused(lambda: client.get_model_repository_index()),
    "infer_without_key": refused(lambda: client.infer(unload, [])),
    "wrong_key": refused(lambda: client.get_model_repository_index(headers={"Authorization": "Bearer nope"})),
    "index": index,
    "versions": answers,
    "latest": latest,
    "metadata": client.get_model_metadata(unload, headers=auth),
    "after_unload": after_unload,
    "ready_after_load": client.is_model_ready(unload, headers=auth),
    "after_load": probabilities(unload),
}))

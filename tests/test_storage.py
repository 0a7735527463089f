"""One :class:`asr_actor.storage.Store` carries the retries of every read and write: the root's
lock (its conditional PUT goes through boto3, not fsspec) and a model folder's listing and
small files ride out an S3 endpoint that refuses connections for a while, and give up
after the store's own budget. moto behind the tests' ``Outage`` relay."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from asr_actor.config import ModelConfig
from asr_actor.model_source import read_model_files
from asr_actor.retry import StoreUnavailable
from asr_actor.storage import Store
from jobs.state.lock import LOCK, RootLock
from jobs.store.manifest import read_manifest
from servers import Outage, s3_client, s3_server

BUCKET = "bkt"
OUTAGE_S = 3.0
CONFIG = {"model_type": "whisper", "vocab_size": 51864}
PREPROCESSOR = {"feature_size": 80, "sampling_rate": 16000}


@pytest.fixture
def relay(monkeypatch):
    """(boto3 client straight to moto, the relay every call under test goes through)."""
    import s3fs

    with s3_server() as aws:
        client = s3_client(aws, BUCKET)
        relay = Outage(int(aws["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]))
        relay.up()
        for key, value in {**aws, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{relay.port}"}.items():
            monkeypatch.setenv(key, value)
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            yield client, relay
        finally:
            relay.down()
            s3fs.S3FileSystem.clear_instance_cache()


def _outage(relay: Outage, seconds: float) -> float:
    """Take the endpoint down now and back up after ``seconds``; return when it went down."""
    relay.down()
    threading.Timer(seconds, relay.up).start()
    return time.monotonic()


@pytest.mark.slow
def test_the_lock_is_taken_through_an_outage_and_released(relay):
    client, outage = relay
    began = _outage(outage, OUTAGE_S)
    lock = RootLock(f"s3://{BUCKET}/root", "night-1", ttl_s=60, store=Store(30))
    lock.acquire()
    assert time.monotonic() - began >= OUTAGE_S - 0.5  # it waited the outage out rather than failing
    held = json.loads(client.get_object(Bucket=BUCKET, Key=f"root/{LOCK}")["Body"].read())
    assert held["run_id"] == "night-1" and held["token"] == lock.owner["token"]
    lock.release()
    assert "Contents" not in client.list_objects_v2(Bucket=BUCKET, Prefix=f"root/{LOCK}")


@pytest.mark.slow
def test_a_model_folder_is_read_through_an_outage_within_the_stores_budget(relay):
    client, outage = relay
    for name, body in (("config.json", json.dumps(CONFIG)), ("preprocessor_config.json", json.dumps(PREPROCESSOR)),
                       ("model.safetensors", "weights are listed, never read here")):
        client.put_object(Bucket=BUCKET, Key=f"model/{name}", Body=body.encode())
    cfg = ModelConfig(id=f"s3://{BUCKET}/model")
    began = _outage(outage, OUTAGE_S)
    files = read_model_files(cfg, Store(30))
    assert time.monotonic() - began >= OUTAGE_S - 0.5
    assert (files.config, files.preprocessor) == (CONFIG, PREPROCESSOR)
    assert files.weights_id == read_model_files(cfg, Store(30)).weights_id  # the same objects, the same identity

    outage.down()  # for good
    with pytest.raises(StoreUnavailable, match=rf"^s3://{BUCKET}/model(/config\.json)?: the store was unreachable "
                                               r"through \d+ tries in 1 s \("):
        read_model_files(cfg, Store(1))  # this store's budget, not the default 120 s


def test_a_prefix_on_a_store_that_fsspec_lists_gives_uris_that_read_back():
    """``memory://`` stands for gs:// and the other stores listed through fsspec (S3 lists through boto3):
    each listed URI carries the store's scheme once and reads back what was written."""
    store, root = Store(1), f"memory://bkt-{uuid.uuid4().hex}/in"
    written = {f"{root}/a.wav": b"RIFF", f"{root}/sub/b.flac": b"fLaC", f"{root}/notes.txt": b"not audio"}
    for uri, data in written.items():
        store.write_bytes(uri, data)
    uris = read_manifest(f"{root}/", store).column("uri").to_pylist()
    assert len(uris) == 2 and all(u.startswith("memory://") and u.count("://") == 1 for u in uris)
    assert sorted(store.read_bytes(u) for u in uris) == [b"RIFF", b"fLaC"]

"""Shared fixtures: `fake_hub`, a stand-in for the Hugging Face Hub that keeps every upload on this machine.

huggingface_hub sends every request through one shared client of its HTTP backend (httpx2 in huggingface_hub 2.x,
httpx in 1.x). `fake_hub` gives it a client whose transport answers the endpoints `create_repo` and
`upload_folder` call (repos/create, validate-yaml, preupload, LFS batch and storage PUT, commit) for model and
dataset repositories alike, and records every request. Nothing leaves the machine.

    def test_upload(fake_hub):
        ...  # code that uploads to "USER/NAME"
        assert fake_hub.created_repos[0]["visibility"] == "private"
        assert "config.json" in fake_hub.committed_files()
        fake_hub.fail["commit"] = (403, "no write access")  # the next commit is refused
"""

import base64
import json
import re

import pytest
from huggingface_hub import DatasetCard, ModelCard, constants
from huggingface_hub.utils import _http
from huggingface_hub.utils import httpx as http_backend


HUB_URL = "https://huggingface.co"
LFS_STORAGE_HOST = "lfs-storage.invalid"
COMMIT_OID = "c0ffee" * 6 + "c0ff"
# The path of a commit request: /api/{models|datasets}/{namespace}/{name}/commit/{revision}
COMMIT_PATH = re.compile(r"^/api/(?P<type>models|datasets)/(?P<repo_id>[^/]+/[^/]+)/commit/")


class FakeHub:
    """A minimal Hub: answers the endpoints of `create_repo` / `upload_folder` and records what it receives.

    Attributes:
        lfs_suffixes: files whose names end so are stored through LFS (the real Hub decides by size and type);
            the others are sent inline (base64) in the commit.
        fail: {endpoint: (status, message)} answers that endpoint with an HTTP error; {endpoint: exception} raises
            the exception as the transport would (no answer at all). Endpoints: "create", "validate_yaml",
            "preupload", "lfs_batch", "lfs_put", "commit".
        requests: [(endpoint, request)] in order; created_repos: the JSON payloads of repos/create; commits: the
            parsed NDJSON lines of each commit; lfs_uploads: {oid: bytes} received by the storage PUT.
    """

    def __init__(self):
        self.lfs_suffixes = ()
        self.fail = {}
        self.requests = []
        self.created_repos = []
        self.commits = []
        self.lfs_uploads = {}

    @staticmethod
    def endpoint_of(request) -> str:
        if request.url.host == LFS_STORAGE_HOST:
            return "lfs_put"
        for fragment, name in (
            ("/api/repos/create", "create"),
            ("/api/validate-yaml", "validate_yaml"),
            ("/preupload/", "preupload"),
            ("/info/lfs/objects/batch", "lfs_batch"),
            ("/commit/", "commit"),
        ):
            if fragment in request.url.path:
                return name
        return "other"

    def handle(self, request):
        request.read()
        name = self.endpoint_of(request)
        self.requests.append((name, request))
        if isinstance(self.fail.get(name), Exception):
            raise self.fail[name]
        if name in self.fail:
            status, message = self.fail[name]
            return http_backend.Response(status, headers={"X-Error-Message": message}, json={"error": message})
        if name == "create":
            payload = json.loads(request.content)
            self.created_repos.append(payload)
            prefix = "datasets/" if payload.get("type") == "dataset" else ""
            url = f"{HUB_URL}/{prefix}{payload['organization']}/{payload['name']}"
            return http_backend.Response(200, json={"url": url})
        if name == "validate_yaml":
            payload = json.loads(request.content)
            # The real endpoint rejects metadata that does not parse.
            (DatasetCard if payload.get("repoType") == "dataset" else ModelCard)(payload["content"])
            return http_backend.Response(200, json={"errors": [], "warnings": []})
        if name == "preupload":
            paths = [file["path"] for file in json.loads(request.content)["files"]]
            modes = [
                {"path": path, "uploadMode": "lfs" if path.endswith(self.lfs_suffixes) else "regular",
                 "shouldIgnore": False}
                for path in paths
            ]  # fmt: skip
            return http_backend.Response(200, json={"files": modes})
        if name == "lfs_batch":
            objects = json.loads(request.content)["objects"]
            actions = [
                {"oid": o["oid"], "size": o["size"],
                 "actions": {"upload": {"href": f"https://{LFS_STORAGE_HOST}/{o['oid']}"}}}
                for o in objects
            ]  # fmt: skip
            return http_backend.Response(200, json={"transfer": "basic", "objects": actions})
        if name == "lfs_put":
            self.lfs_uploads[request.url.path.strip("/")] = request.content
            return http_backend.Response(200)
        if name == "commit":
            self.commits.append([json.loads(line) for line in request.content.decode().splitlines()])
            match = COMMIT_PATH.match(request.url.path)
            prefix = "datasets/" if match["type"] == "datasets" else ""
            commit_url = f"{HUB_URL}/{prefix}{match['repo_id']}/commit/{COMMIT_OID}"
            return http_backend.Response(200, json={"commitUrl": commit_url, "commitOid": COMMIT_OID})
        return http_backend.Response(404, json={"error": f"{request.method} {request.url.path} is not served here"})

    def names(self) -> list:
        """The endpoints requested, in order."""
        return [name for name, _ in self.requests]

    def committed_files(self, commit_index: int = -1) -> dict:
        """{path in the repository: ("file", bytes) or ("lfsFile", sha256)} of a commit (default: the last)."""
        files = {}
        for line in self.commits[commit_index]:
            if line["key"] == "file":
                files[line["value"]["path"]] = ("file", base64.b64decode(line["value"]["content"]))
            elif line["key"] == "lfsFile":
                files[line["value"]["path"]] = ("lfsFile", line["value"]["oid"])
        return files


@pytest.fixture
def fake_hub(monkeypatch):
    """A `FakeHub` that receives every request huggingface_hub sends during the test."""
    hub = FakeHub()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the stand-in is reachable even in offline test runs
    _http.set_client_factory(lambda: http_backend.Client(transport=http_backend.MockTransport(hub.handle)))
    yield hub
    _http.set_client_factory(_http.default_client_factory)  # also closes the stand-in's client

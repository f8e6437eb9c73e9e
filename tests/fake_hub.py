"""A local HTTP server standing in for the Hugging Face Hub's API (the one mock allowed).

It implements what `HfApi.create_repo` and `HfApi.create_commit` call: repo creation, preupload
(every file "regular", with the git oid of the stored copy so unchanged files are skipped),
NDJSON commits, and repo info. It records every request so tests can check what was sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml


def git_oid(data: bytes) -> str:
    """git's blob hash, as huggingface_hub computes it for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """Repos in memory; `fail_commits` lists commit numbers (1-based, across the run) that fail."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.commits: list[tuple[str, list[str]]] = []
        self.headers_seen: list[str] = []
        self.fail_commits: set[int] = set()
        self.cards: list[str] = []
        self.commit_attempts = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _reply(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _repo(self, parts: list[str]) -> str:
                return f"{parts[2]}/{parts[3]}"

            def do_POST(self) -> None:
                hub.headers_seen.append(str(self.headers))
                parts = self.path.split("?")[0].strip("/").split("/")
                body = self._body()
                with hub.lock:
                    if parts[:3] == ["api", "repos", "create"]:
                        request = json.loads(body)
                        repo = f"{request.get('organization') or 'user'}/{request['name']}"
                        hub.repos.setdefault(repo, {})
                        return self._reply(200, {"url": f"{hub.url}/datasets/{repo}"})
                    if parts[:2] == ["api", "validate-yaml"]:
                        content = json.loads(body)["content"]
                        hub.cards.append(content)
                        try:  # the Hub checks the card's front matter; so does this stand-in
                            yaml.safe_load(content.split("---")[1])
                        except (IndexError, yaml.YAMLError) as err:
                            return self._reply(400, {"errors": [{"message": str(err)}]})
                        return self._reply(200, {"errors": [], "warnings": []})
                    if parts[0] == "api" and parts[1] == "datasets" and parts[4] == "preupload":
                        stored = hub.repos.get(self._repo(parts), {})
                        files = [
                            {
                                "path": f["path"],
                                "uploadMode": "regular",
                                "shouldIgnore": False,
                                "oid": git_oid(stored[f["path"]]) if f["path"] in stored else None,
                            }
                            for f in json.loads(body)["files"]
                        ]
                        return self._reply(200, {"files": files, "commitOid": "0" * 40})
                    if parts[0] == "api" and parts[1] == "datasets" and parts[4] == "commit":
                        hub.commit_attempts += 1
                        if hub.commit_attempts in hub.fail_commits:
                            return self._reply(422, {"error": "simulated interruption"})
                        repo = self._repo(parts)
                        sent = []
                        for line in body.decode().splitlines():
                            entry = json.loads(line)
                            if entry["key"] == "file":
                                value = entry["value"]
                                hub.repos[repo][value["path"]] = base64.b64decode(value["content"])
                                sent.append(value["path"])
                        hub.commits.append((repo, sent))
                        oid = hashlib.sha1(repr(hub.commits).encode()).hexdigest()
                        return self._reply(
                            200,
                            {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{oid}", "commitOid": oid, "success": True},
                        )
                return self._reply(404, {"error": f"not faked: POST {self.path}"})

            def do_GET(self) -> None:
                hub.headers_seen.append(str(self.headers))
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) >= 4 and parts[:2] == ["api", "datasets"]:
                    repo = self._repo(parts)
                    siblings = [{"rfilename": p} for p in sorted(hub.repos.get(repo, {}))]
                    return self._reply(200, {"id": repo, "sha": "1" * 40, "private": False, "siblings": siblings})
                return self._reply(404, {"error": f"not faked: GET {self.path}"})

        return Handler

"""A small Hugging Face Hub-compatible server for tests (stdlib + the ``git`` executable).

It speaks the part of the Hub HTTP protocol that ``huggingface_hub`` 2.x uses to push and pull a
model repository, so the real client can be tested end to end on loopback:

uploads
    ``POST /api/repos/create``, ``DELETE /api/repos/delete``, ``POST /api/validate-yaml``,
    ``POST /api/{type}s/{repo}/preupload/{rev}`` (always answers upload mode ``"regular"``: file
    contents travel base64-encoded inside the commit, no LFS/Xet storage is involved),
    ``POST /api/{type}s/{repo}/commit/{rev}`` (NDJSON: ``header``, ``file``, ``deletedFile``,
    ``deletedFolder``), ``POST /api/{type}s/{repo}/branch/{branch}``.
downloads
    ``GET /api/{type}s/{repo}[/revision/{rev}]`` (with ``sha`` and ``siblings``),
    ``GET /api/{type}s/{repo}/tree/{rev}[/{path}]``, ``POST /api/{type}s/{repo}/paths-info/{rev}``,
    ``GET /api/{type}s/{repo}/refs``, ``GET /api/{type}s/{repo}/commits/{rev}``,
    ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag`` (the git blob id,
    as the Hub sends for non-LFS files) and ``Content-Length``; ``Range`` requests are honoured.
errors
    the Hub's ``X-Error-Code`` headers: ``RepoNotFound`` (401), ``RevisionNotFound`` (404),
    ``EntryNotFound`` (404, with ``X-Repo-Commit``), which ``huggingface_hub`` turns into its typed
    errors.

Every repository is a bare git repository at ``ROOT/{type}s/{namespace}/{name}`` (commits, branches
and blob ids are real git objects), which is exactly the layout of an Olah mirror directory: point
Olah's ``mirrors-path`` at ROOT and it serves what was pushed here, same commit hashes.

Run: ``python tests/hub_server.py --port 0 --root DIR`` prints the port on the first line of stdout.
Failure injection for tests: ``--die-on KIND`` (``create``, ``preupload``, ``commit``, ``resolve``,
``info``, ...) or ``--fail-after N`` make the process exit abruptly (no response, socket closed)
when that request arrives, as a server crashing mid-push would.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_USER = "hfrec-tester"
INITIAL_GITATTRIBUTES = (
    "# Created by the hfrec test hub. Files are stored as regular git blobs (no LFS).\n"
)
_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class HubError(Exception):
    """An error answered with the Hub's status code and ``X-Error-Code`` header."""

    def __init__(self, status: int, code: str | None, message: str, headers: dict | None = None,
                 body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.body = body or {}


def _repo_not_found(repo_id: str) -> HubError:
    # The Hub answers 401 for a missing repo (it cannot tell missing from private).
    return HubError(401, "RepoNotFound", f"Repository {repo_id} not found")


def _revision_not_found(revision: str) -> HubError:
    return HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")


def _hub_date(epoch: str) -> str:
    """The Hub's date format (what `huggingface_hub.utils.parse_datetime` expects)."""
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class GitStore:
    """Repositories as bare git repos, driven through git plumbing commands."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.env = {
            **os.environ,
            "GIT_AUTHOR_NAME": DEFAULT_USER,
            "GIT_AUTHOR_EMAIL": f"{DEFAULT_USER}@localhost",
            "GIT_COMMITTER_NAME": DEFAULT_USER,
            "GIT_COMMITTER_EMAIL": f"{DEFAULT_USER}@localhost",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
        }

    # -- plumbing -------------------------------------------------------------------------------
    def _git(self, path: Path, *args: str, input: bytes | None = None, env: dict | None = None,
             check: bool = True) -> bytes:
        proc = subprocess.run(
            ["git", "--git-dir", str(path), *args],
            input=input,
            capture_output=True,
            env={**self.env, **(env or {})},
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc.stdout

    def path(self, repo_type: str, repo_id: str) -> Path:
        namespace, name = repo_id.split("/", 1)
        return self.root / f"{repo_type}s" / namespace / name

    def exists(self, repo_type: str, repo_id: str) -> bool:
        return (self.path(repo_type, repo_id) / "HEAD").is_file()

    def require(self, repo_type: str, repo_id: str) -> Path:
        if not self.exists(repo_type, repo_id):
            raise _repo_not_found(repo_id)
        return self.path(repo_type, repo_id)

    # -- repos ----------------------------------------------------------------------------------
    def is_private(self, path: Path) -> bool:
        return self._git(path, "config", "--get", "hfrec.private", check=False).strip() == b"true"

    def create(self, repo_type: str, repo_id: str, url: str, private: bool = False) -> None:
        path = self.path(repo_type, repo_id)
        with self.lock:
            if (path / "HEAD").is_file():  # the Hub's 409 names the existing repo's url
                raise HubError(409, None, f"You already created this {repo_type} repo", body={"url": url})
            tmp = path.with_name(f".{path.name}.creating-{os.getpid()}-{threading.get_ident()}")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(tmp)],
                           check=True, env=self.env, capture_output=True)
            blob = self._git(tmp, "hash-object", "-w", "--stdin", input=INITIAL_GITATTRIBUTES.encode()).decode().strip()
            tree = self._git(tmp, "mktree", input=f"100644 blob {blob}\t.gitattributes\n".encode()).decode().strip()
            commit = self._git(tmp, "commit-tree", tree, "-m", "initial commit").decode().strip()
            self._git(tmp, "update-ref", "refs/heads/main", commit)
            self._git(tmp, "config", "hfrec.private", "true" if private else "false")
            os.replace(tmp, path)

    def delete(self, repo_type: str, repo_id: str) -> None:
        import shutil

        path = self.require(repo_type, repo_id)
        with self.lock:
            shutil.rmtree(path)

    # -- revisions ------------------------------------------------------------------------------
    def resolve(self, path: Path, revision: str) -> str | None:
        candidates = [revision]
        if not revision.startswith("refs/"):
            candidates = [f"refs/heads/{revision}", f"refs/tags/{revision}"]
            if _FULL_SHA.match(revision):
                candidates.insert(0, revision)
        for cand in candidates:
            out = self._git(path, "rev-parse", "--verify", "--quiet", f"{cand}^{{commit}}", check=False)
            sha = out.decode().strip()
            if _FULL_SHA.match(sha):
                if cand == revision and _FULL_SHA.match(revision) and sha != revision:
                    continue
                return sha
        return None

    def require_revision(self, repo_type: str, repo_id: str, revision: str) -> tuple[Path, str]:
        path = self.require(repo_type, repo_id)
        sha = self.resolve(path, revision)
        if sha is None:
            raise _revision_not_found(revision)
        return path, sha

    def branches(self, path: Path) -> list[dict]:
        out = self._git(path, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/tags").decode()
        refs = []
        for line in out.splitlines():
            ref, sha = line.split(" ", 1)
            refs.append({"ref": ref, "sha": sha})
        return refs

    # -- trees ----------------------------------------------------------------------------------
    def ls_tree(self, path: Path, sha: str) -> list[dict]:
        """All entries (files and directories) of a commit, recursively."""
        out = self._git(path, "ls-tree", "-r", "-t", "-l", "-z", sha)
        entries = []
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, name = record.split(b"\t", 1)
            mode, kind, oid, size = meta.decode().split()
            entries.append({
                "type": "directory" if kind == "tree" else "file",
                "oid": oid,
                "size": 0 if kind == "tree" else int(size),
                "path": name.decode(),
            })
        return entries

    def files(self, path: Path, sha: str) -> dict[str, dict]:
        return {e["path"]: e for e in self.ls_tree(path, sha) if e["type"] == "file"}

    def read_blob(self, path: Path, oid: str) -> bytes:
        return self._git(path, "cat-file", "blob", oid)

    def commit_date(self, path: Path, sha: str) -> str:
        return _hub_date(self._git(path, "show", "-s", "--format=%ct", sha).decode().strip())

    def log(self, path: Path, sha: str) -> list[dict]:
        out = self._git(path, "log", "--format=%H%x00%s%x00%ct%x00%b%x1e", sha).decode()
        commits = []
        for record in out.split("\x1e"):
            record = record.strip("\n")
            if not record:
                continue
            oid, title, date, body = record.split("\x00", 3)
            commits.append({"id": oid, "title": title, "message": body, "date": _hub_date(date),
                            "authors": [{"user": DEFAULT_USER}]})
        return commits

    # -- commits --------------------------------------------------------------------------------
    def create_branch(self, repo_type: str, repo_id: str, branch: str, starting_point: str | None) -> None:
        path = self.require(repo_type, repo_id)
        with self.lock:
            if self.resolve(path, f"refs/heads/{branch}") is not None:
                raise HubError(409, None, f"Branch {branch} already exists")
            sha = self.resolve(path, starting_point or "main")
            if sha is None:
                raise _revision_not_found(starting_point or "main")
            self._git(path, "update-ref", f"refs/heads/{branch}", sha, "0" * 40)

    def delete_branch(self, repo_type: str, repo_id: str, branch: str) -> None:
        path = self.require(repo_type, repo_id)
        with self.lock:
            if self.resolve(path, f"refs/heads/{branch}") is None:
                raise _revision_not_found(branch)
            self._git(path, "update-ref", "-d", f"refs/heads/{branch}")

    def commit(self, repo_type: str, repo_id: str, revision: str, header: dict,
               additions: list[tuple[str, bytes]], deletions: list[tuple[str, bool]]) -> str:
        path = self.require(repo_type, repo_id)
        ref = revision if revision.startswith("refs/") else f"refs/heads/{revision}"
        with self.lock:
            parent = self.resolve(path, ref)
            if parent is None:
                raise _revision_not_found(revision)
            wanted_parent = header.get("parentCommit")
            if wanted_parent and not parent.startswith(wanted_parent):
                raise HubError(412, None, f"A commit has happened since. Parent {wanted_parent} is not the head of {revision}")
            index = path / f"index.commit-{threading.get_ident()}"
            env = {"GIT_INDEX_FILE": str(index)}
            try:
                self._git(path, "read-tree", parent, env=env)
                existing = self.files(path, parent)
                for rel, is_folder in deletions:
                    rel = rel.strip("/")
                    if is_folder:
                        doomed = [p for p in existing if p == rel or p.startswith(rel + "/")]
                    else:
                        doomed = [rel] if rel in existing else []
                    if not doomed:
                        raise HubError(404, "EntryNotFound", f"{rel} does not exist on {revision}",
                                       {"X-Repo-Commit": parent})
                    self._git(path, "update-index", "--force-remove", "-z", "--stdin", env=env,
                              input=b"\0".join(p.encode() for p in doomed) + b"\0")
                for rel, content in additions:
                    oid = self._git(path, "hash-object", "-w", "--stdin", input=content).decode().strip()
                    self._git(path, "update-index", "--add", "--cacheinfo", f"100644,{oid},{rel}", env=env)
                tree = self._git(path, "write-tree", env=env).decode().strip()
                message = header.get("summary") or "commit"
                if header.get("description"):
                    message += "\n\n" + header["description"]
                sha = self._git(path, "commit-tree", tree, "-p", parent, "-m", message).decode().strip()
                # compare-and-swap: fails if the branch moved meanwhile
                self._git(path, "update-ref", ref, sha, parent)
                return sha
            finally:
                index.unlink(missing_ok=True)


def _validate_card_yaml(content: str) -> list[str]:
    """Checks the README metadata block the way the Hub does (a YAML mapping, sane model-index)."""
    if not content.startswith("---"):
        return []
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, flags=re.S)
    if match is None:
        return ["The metadata block is not closed by a '---' line"]
    try:
        import yaml  # PyYAML ships with huggingface_hub's dependencies
    except ImportError:  # pragma: no cover - nothing to check against
        return []
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as err:
        return [f"Invalid YAML: {err}"]
    if data is None:
        return []
    if not isinstance(data, dict):
        return ["The metadata must be a YAML mapping"]
    errors = []
    for key in ("tags", "datasets"):
        if key in data and not isinstance(data[key], (list, str)):
            errors.append(f'"{key}" must be a list of strings')
    if "model-index" in data:
        index = data["model-index"]
        if not isinstance(index, list):
            errors.append('"model-index" must be a list')
        else:
            for entry in index:
                if not isinstance(entry, dict) or "name" not in entry or not isinstance(entry.get("results"), list):
                    errors.append('"model-index" entries need "name" and a list of "results"')
                    continue
                for result in entry["results"]:
                    if not isinstance(result, dict) or "task" not in result or "dataset" not in result:
                        errors.append('"model-index.results" entries need "task" and "dataset"')
                        continue
                    for metric in result.get("metrics", []):
                        if not isinstance(metric, dict) or "type" not in metric or "value" not in metric:
                            errors.append('"model-index" metrics need "type" and "value"')
    return errors


class HubHandler(BaseHTTPRequestHandler):
    server_version = "hfrec-test-hub/1.0"
    protocol_version = "HTTP/1.1"

    # set on the class by `make_server`
    store: GitStore
    base_url: str
    die_on: set
    fail_after: int | None
    counter = [0]
    counter_lock = threading.Lock()
    quiet = True

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        if not self.quiet:
            sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))

    # -- plumbing -------------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
              content_type: str = "application/json", head: bool = False, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: dict | None = None, head: bool = False) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers, head=head)

    def _error(self, err: HubError, head: bool = False) -> None:
        headers = {"X-Error-Message": err.message, **err.headers}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._json(err.status, {"error": err.message, **err.body}, headers=headers, head=head)

    def _maybe_die(self, kind: str) -> None:
        with self.counter_lock:
            self.counter[0] += 1
            count = self.counter[0]
        if kind in self.die_on or (self.fail_after is not None and count > self.fail_after):
            sys.stderr.write(f"hub_server: dying on request #{count} ({kind} {self.path})\n")
            sys.stderr.flush()
            os._exit(17)  # no response, sockets closed by the kernel: a crashed server

    # -- dispatch -------------------------------------------------------------------------------
    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PUT(self):
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        head = method == "HEAD"
        try:
            body = self._body() if method in ("POST", "PUT", "DELETE") else b""
            kind, handler, args = self._route(method, segments)
            self._maybe_die(kind)
            handler(*args, body=body, query=query, head=head)
        except HubError as err:
            self._error(err, head=head)
        except Exception as err:  # pragma: no cover - surfaced to the client as a 500
            import traceback

            traceback.print_exc()
            self._error(HubError(500, None, f"Internal error: {err!r}"), head=head)

    def _route(self, method: str, seg: list[str]):
        if seg[:1] == ["api"]:
            rest = seg[1:]
            if rest == ["repos", "create"] and method == "POST":
                return "create", self.h_create, ()
            if rest == ["repos", "delete"] and method == "DELETE":
                return "delete", self.h_delete, ()
            if rest == ["validate-yaml"] and method == "POST":
                return "validate-yaml", self.h_validate_yaml, ()
            if rest[:1] == ["whoami-v2"]:
                return "whoami", self.h_whoami, ()
            if len(rest) >= 3 and rest[0] in _REPO_TYPES:
                repo_type = _REPO_TYPES[rest[0]]
                repo_id = f"{rest[1]}/{rest[2]}"
                tail = rest[3:]
                if not tail and method in ("GET", "HEAD"):
                    return "info", self.h_info, (repo_type, repo_id, "main")
                action = tail[0] if tail else ""
                if action == "revision" and len(tail) >= 2 and method in ("GET", "HEAD"):
                    return "info", self.h_info, (repo_type, repo_id, "/".join(tail[1:]))
                if action == "tree" and len(tail) >= 2 and method in ("GET", "HEAD"):
                    return "tree", self.h_tree, (repo_type, repo_id, tail[1], "/".join(tail[2:]))
                if action == "paths-info" and len(tail) == 2 and method == "POST":
                    return "paths-info", self.h_paths_info, (repo_type, repo_id, tail[1])
                if action == "refs" and method == "GET":
                    return "refs", self.h_refs, (repo_type, repo_id)
                if action == "commits" and len(tail) == 2 and method == "GET":
                    return "commits", self.h_commits, (repo_type, repo_id, tail[1])
                if action == "preupload" and len(tail) == 2 and method == "POST":
                    return "preupload", self.h_preupload, (repo_type, repo_id, tail[1])
                if action == "commit" and len(tail) == 2 and method == "POST":
                    return "commit", self.h_commit, (repo_type, repo_id, tail[1])
                if action == "branch" and len(tail) == 2 and method in ("POST", "DELETE"):
                    return "branch", self.h_branch, (repo_type, repo_id, tail[1], method)
            raise HubError(404, None, f"Unknown API route {method} {self.path}")
        # /{ns}/{name}/resolve/{rev}/{path} or /{datasets|spaces}/{ns}/{name}/resolve/{rev}/{path}
        repo_type = "model"
        if seg and seg[0] in ("datasets", "spaces"):
            repo_type, seg = _REPO_TYPES[seg[0]], seg[1:]
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            return "resolve", self.h_resolve, (repo_type, f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]))
        raise HubError(404, None, f"Unknown route {method} {self.path}")

    def _open(self, repo_type: str, repo_id: str, revision: str | None) -> tuple[Path, str | None]:
        """The repo (and the commit of ``revision``); a private repo is invisible without a token, as on the Hub."""
        path = self.store.require(repo_type, repo_id)
        if self.store.is_private(path) and not self.headers.get("Authorization"):
            raise _repo_not_found(repo_id)
        if revision is None:
            return path, None
        return self.store.require_revision(repo_type, repo_id, revision)

    # -- handlers: repos ------------------------------------------------------------------------
    def h_create(self, body, query, head):
        payload = json.loads(body or b"{}")
        name = payload.get("name") or ""
        namespace = payload.get("organization") or DEFAULT_USER
        repo_type = payload.get("type") or "model"
        if not _NAME.match(name) or not _NAME.match(namespace):
            raise HubError(400, None, f"Invalid repo name {namespace}/{name}")
        repo_id = f"{namespace}/{name}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.base_url}/{prefix}{repo_id}"
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.store.create(repo_type, repo_id, url, private=private)
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def h_delete(self, body, query, head):
        payload = json.loads(body or b"{}")
        namespace = payload.get("organization") or DEFAULT_USER
        self.store.delete(payload.get("type") or "model", f"{namespace}/{payload.get('name')}")
        self._json(200, {})

    def h_validate_yaml(self, body, query, head):
        payload = json.loads(body or b"{}")
        errors = _validate_card_yaml(payload.get("content", ""))
        if errors:
            self._json(400, {"errors": [{"message": e} for e in errors], "warnings": []})
        else:
            self._json(200, {"errors": [], "warnings": []})

    def h_whoami(self, body, query, head):
        self._json(200, {"type": "user", "name": DEFAULT_USER, "fullname": "hfrec test user", "orgs": [],
                         "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}})

    # -- handlers: reading ----------------------------------------------------------------------
    def h_info(self, repo_type, repo_id, revision, body, query, head):
        path, sha = self._open(repo_type, repo_id, revision)
        files = self.store.files(path, sha)
        card = {}
        if "README.md" in files:
            from_readme = self.store.read_blob(path, files["README.md"]["oid"]).decode(errors="replace")
            match = re.match(r"^---\s*\n(.*?)\n---", from_readme, flags=re.S)
            if match:
                try:
                    import yaml

                    card = yaml.safe_load(match.group(1)) or {}
                except Exception:
                    card = {}
        info = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": sha,
            "lastModified": self.store.commit_date(path, sha),
            "private": self.store.is_private(path),
            "gated": False,
            "disabled": False,
            "tags": list(card.get("tags") or []) if isinstance(card, dict) else [],
            "library_name": card.get("library_name") if isinstance(card, dict) else None,
            "pipeline_tag": card.get("pipeline_tag") if isinstance(card, dict) else None,
            "cardData": card if isinstance(card, dict) else {},
            "siblings": [{"rfilename": p} for p in sorted(files)],
            "downloads": 0,
            "likes": 0,
        }
        self._json(200, info, head=head)

    def h_tree(self, repo_type, repo_id, revision, sub, body, query, head):
        path, sha = self._open(repo_type, repo_id, revision)
        recursive = (query.get("recursive") or ["false"])[0].lower() in ("1", "true")
        entries = self.store.ls_tree(path, sha)
        sub = sub.strip("/")
        if sub:
            if not any(e["path"] == sub and e["type"] == "directory" for e in entries):
                raise HubError(404, "EntryNotFound", f"{sub} does not exist on {revision}", {"X-Repo-Commit": sha})
            entries = [e for e in entries if e["path"].startswith(sub + "/")]
            depth0 = sub.count("/") + 1
        else:
            depth0 = 0
        if not recursive:
            entries = [e for e in entries if e["path"].count("/") == depth0]
        self._json(200, entries, head=head)

    def h_paths_info(self, repo_type, repo_id, revision, body, query, head):
        path, sha = self._open(repo_type, repo_id, revision)
        form = parse_qs(body.decode())
        wanted = form.get("paths", [])
        entries = {e["path"]: e for e in self.store.ls_tree(path, sha)}
        self._json(200, [entries[p] for p in wanted if p in entries])

    def h_refs(self, repo_type, repo_id, body, query, head):
        path, _ = self._open(repo_type, repo_id, None)
        out = {"branches": [], "tags": [], "converts": []}
        for ref in self.store.branches(path):
            group = "branches" if ref["ref"].startswith("refs/heads/") else "tags"
            name = ref["ref"].split("/", 2)[2]
            out[group].append({"name": name, "ref": ref["ref"], "targetCommit": ref["sha"]})
        self._json(200, out)

    def h_commits(self, repo_type, repo_id, revision, body, query, head):
        path, sha = self._open(repo_type, repo_id, revision)
        self._json(200, self.store.log(path, sha))

    def h_resolve(self, repo_type, repo_id, revision, rel, body, query, head):
        path, sha = self._open(repo_type, repo_id, revision)
        files = self.store.files(path, sha)
        if rel not in files:
            raise HubError(404, "EntryNotFound", f"{rel} does not exist on \"{revision}\"",
                           {"X-Repo-Commit": sha})
        entry = files[rel]
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{entry["oid"]}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{rel.rsplit("/", 1)[-1]}"',
        }
        size = entry["size"]
        range_header = self.headers.get("Range")
        if head:
            self._send(200, b"", headers=headers, content_type="application/octet-stream", head=True, length=size)
            return
        data = self.store.read_blob(path, entry["oid"])
        match = re.match(r"bytes=(\d*)-(\d*)$", range_header or "")
        if match and (match.group(1) or match.group(2)):
            start = int(match.group(1)) if match.group(1) else max(size - int(match.group(2)), 0)
            end = int(match.group(2)) if match.group(1) and match.group(2) else size - 1
            if start >= size:
                self._send(416, b"", headers={"Content-Range": f"bytes */{size}", **headers})
                return
            end = min(end, size - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            self._send(206, data[start:end + 1], headers=headers, content_type="application/octet-stream")
            return
        self._send(200, data, headers=headers, content_type="application/octet-stream")

    # -- handlers: writing ----------------------------------------------------------------------
    def h_preupload(self, repo_type, repo_id, revision, body, query, head):
        path, sha = self._open(repo_type, repo_id, revision)
        payload = json.loads(body or b"{}")
        existing = self.store.files(path, sha)
        files = []
        for item in payload.get("files", []):
            remote = existing.get(item["path"])
            files.append({
                "path": item["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": remote["oid"] if remote else None,
            })
        self._json(200, {"files": files, "commitOid": sha})

    def h_commit(self, repo_type, repo_id, revision, body, query, head):
        if query.get("create_pr"):
            raise HubError(400, None, "This test hub does not implement pull requests")
        header: dict = {}
        additions: list[tuple[str, bytes]] = []
        deletions: list[tuple[str, bool]] = []
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, None, f"Unsupported encoding {value.get('encoding')}")
                additions.append((value["path"], base64.b64decode(value["content"])))
            elif key == "deletedFile":
                deletions.append((value["path"], False))
            elif key == "deletedFolder":
                deletions.append((value["path"], True))
            elif key == "lfsFile":
                raise HubError(400, None, f"LFS file {value.get('path')} was never announced as LFS by preupload")
            else:
                raise HubError(400, None, f"Unknown commit operation {key!r}")
        for rel, _ in additions:
            if rel.startswith("/") or ".." in rel.split("/") or rel.startswith(".git/"):
                raise HubError(400, None, f"Invalid path in repo: {rel}")
        if not header.get("summary"):
            raise HubError(400, None, "The commit summary is empty")
        sha = self.store.commit(repo_type, repo_id, revision, header, additions, deletions)
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        self._json(200, {"success": True, "commitOid": sha,
                         "commitUrl": f"{self.base_url}/{prefix}{repo_id}/commit/{sha}",
                         "pullRequestUrl": None})

    def h_branch(self, repo_type, repo_id, branch, method, body, query, head):
        if method == "DELETE":
            self.store.delete_branch(repo_type, repo_id, branch)
        else:
            payload = json.loads(body or b"{}")
            self.store.create_branch(repo_type, repo_id, branch, payload.get("startingPoint"))
        self._json(200, {})


def make_server(root: str | Path, port: int = 0, host: str = "127.0.0.1", die_on=(), fail_after=None,
                quiet: bool = True) -> ThreadingHTTPServer:
    """Builds (but does not start) a server; `server.server_address[1]` is the bound port."""
    handler = type("BoundHubHandler", (HubHandler,), {})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    handler.store = GitStore(Path(root))
    handler.base_url = f"http://{host}:{server.server_address[1]}"
    handler.die_on = set(die_on)
    handler.fail_after = fail_after
    handler.counter = [0]
    handler.counter_lock = threading.Lock()
    handler.quiet = quiet
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="folder holding the repositories (bare git repos)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--die-on", action="append", default=[],
                        help="exit abruptly when a request of this kind arrives (create, preupload, commit, ...)")
    parser.add_argument("--fail-after", type=int, default=None,
                        help="exit abruptly when request number N+1 arrives")
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    args = parser.parse_args(argv)
    server = make_server(args.root, args.port, args.host, args.die_on, args.fail_after, quiet=not args.verbose)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

"""``kbchat models pull REPO[:FILE]``: a GGUF model from Hugging Face or ModelScope (or a
mirror of either).

Hugging Face: huggingface_hub does the talking: ``HfApi.list_repo_tree`` gives the
repository's files with their sizes and LFS sha256, and ``http_get`` streams one with its
progress bar and retries. ``HF_ENDPOINT`` (read at each pull) selects a mirror; ``HF_TOKEN``
a token.

ModelScope: its documented HTTP file API, through httpx (already a dependency): ``GET
/api/v1/models/<repo>/repo/files?Revision=&Recursive=True`` lists the files with size and
Sha256, ``GET /api/v1/models/<repo>/repo?Revision=&FilePath=`` serves one (with Range). The
``modelscope`` package would do the same, but its 6 MB wheel (plus modelscope-hub, requests,
cryptography and setuptools) is a model framework; kbchat needs two GETs. Endpoint:
``MODELSCOPE_ENDPOINT``, else ``MODELSCOPE_DOMAIN`` (a host name, as the modelscope package
reads it), else https://modelscope.cn; token: ``MODELSCOPE_API_TOKEN``.

Either way the download goes to ``<file>.part`` and continues from there when run again (a
Range request), so an interrupted pull resumes; the whole file's sha256 must equal the
hub's before it is renamed into place.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kbchat.errors import BackendError, BadInput, MissingDependency, NotFound

DEFAULT_ENDPOINT = "https://huggingface.co"
MODELSCOPE_ENDPOINT = "https://modelscope.cn"
PREFERRED_QUANT = "q4_k_m"
_BLOCK = 8 * 2**20

Source = Literal["huggingface", "modelscope"]
SOURCES: tuple[Source, ...] = ("huggingface", "modelscope")
DEFAULT_REVISION: dict[Source, str] = {"huggingface": "main", "modelscope": "master"}
PULL_FOLDERS: dict[Source, str] = {"huggingface": "hf", "modelscope": "modelscope"}
"""Where each hub's downloads go, below the models folder."""
Progress = Callable[[int, int], None]
"""Called with (bytes downloaded, bytes in all) as a download goes on."""


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A file of a hub repository: its path there, size in bytes and sha256."""

    path: str
    size: int
    sha256: str | None


def parse_reference(reference: str) -> tuple[str, str | None]:
    """``owner/repo`` or ``owner/repo:file.gguf`` -> (repo, file or None).

    Raises:
        BadInput: the reference is not of that form.
    """
    repo, _, filename = reference.partition(":")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise BadInput(
            f"model reference {reference!r} should be OWNER/REPO or OWNER/REPO:FILE.gguf, "
            "e.g. Qwen/Qwen2.5-1.5B-Instruct-GGUF:qwen2.5-1.5b-instruct-q4_k_m.gguf"
        )
    return repo, filename or None


def pull_gguf(
    reference: str,
    target_dir: Path,
    *,
    source: Source = "huggingface",
    revision: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Download the GGUF ``reference`` names into ``target_dir/<owner>--<repo>/`` (resuming a
    ``.part`` file left by an earlier pull) and check its sha256.

    Args:
        reference: ``OWNER/REPO`` or ``OWNER/REPO:FILE.gguf``.
        target_dir: The folder for the source's downloads.
        source: ``huggingface`` or ``modelscope``.
        revision: Branch, tag or commit (default: main on Hugging Face, master on ModelScope).
        endpoint: The hub or a mirror (default: from the environment, see the module).
        token: An access token (default: HF_TOKEN / MODELSCOPE_API_TOKEN).
        progress: Told (bytes done, bytes in all) as the download goes on; without it,
            huggingface_hub draws its own progress bar (ModelScope: none).

    Returns:
        The verified file's path (already there and verified: no download).

    Raises:
        BadInput: bad reference or source, or several GGUF files and none named.
        NotFound: no such repository, revision or file (the message lists the GGUF files).
        BackendError: the hub is unreachable or fails, or the file's sha256 differs.
    """
    repo, filename = parse_reference(reference)
    if source not in SOURCES:
        raise BadInput(f"unknown model source {source!r}; choose {' or '.join(SOURCES)}")
    revision = revision or DEFAULT_REVISION[source]
    if source == "modelscope":
        return _pull_modelscope(repo, filename, target_dir, revision, endpoint, token, progress)
    try:
        from huggingface_hub import HfApi, hf_hub_url
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:
        raise MissingDependency("huggingface_hub", "hub", "kbchat models pull") from None
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    api = HfApi(endpoint=endpoint, token=token)
    try:
        remote = _choose(repo, filename, _files(api, repo, revision))
        target = Path(target_dir).expanduser() / repo.replace("/", "--") / Path(remote.path).name
        if _verified(target, remote):
            return target
        url = hf_hub_url(repo, remote.path, revision=revision, endpoint=endpoint)
        _download(url, target, remote, token, progress)
    except HfHubHTTPError as exc:
        raise _hub_error(exc, repo, endpoint) from None
    except Exception as exc:
        if _is_transport_error(exc):
            raise BackendError(f"cannot reach {endpoint} for {repo}: {exc}") from None
        raise
    return target


def _files(api: Any, repo: str, revision: str) -> list[RemoteFile]:
    from huggingface_hub.hf_api import RepoFile

    entries = api.list_repo_tree(repo, revision=revision, recursive=True)
    return [
        RemoteFile(e.path, e.size, e.lfs.sha256 if e.lfs is not None else None)
        for e in entries
        if isinstance(e, RepoFile)
    ]


def _choose(repo: str, filename: str | None, files: list[RemoteFile]) -> RemoteFile:
    ggufs = [f for f in files if f.path.lower().endswith(".gguf")]
    names = ", ".join(f.path for f in ggufs) or "none"
    if filename is not None:
        for remote in files:
            if remote.path == filename:
                return remote
        raise NotFound(f"{repo} has no file {filename!r}; its GGUF files: {names}")
    if len(ggufs) == 1:
        return ggufs[0]
    preferred = [f for f in ggufs if PREFERRED_QUANT in f.path.lower()]
    if len(preferred) == 1:
        return preferred[0]
    if not ggufs:
        raise NotFound(f"{repo} has no GGUF file (kbchat runs GGUF models with llama.cpp)")
    raise BadInput(f"{repo} has several GGUF files; name one as {repo}:FILE: {names}")


def _verified(target: Path, remote: RemoteFile) -> bool:
    sidecar = target.with_name(target.name + ".sha256")
    if not target.is_file() or target.stat().st_size != remote.size:
        return False
    return sidecar.is_file() and sidecar.read_text(encoding="ascii").split()[:1] == [remote.sha256]


def _download(
    url: str, target: Path, remote: RemoteFile, token: str | None, progress: Progress | None
) -> None:
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

    part, done = _partial(target, remote)
    headers = build_hf_headers(token=token)
    with part.open("ab") as stream:
        http_get(
            url,
            stream,
            resume_size=done,
            headers=headers,
            expected_size=remote.size,
            displayed_filename=remote.path,
            tqdm_class=None if progress is None else _reporting_bar(progress, done, remote.size),
        )
    _finish(part, target, remote)


def _reporting_bar(progress: Progress, done: int, total: int) -> Any:
    """A silent tqdm class for huggingface_hub's ``http_get`` that tells ``progress`` instead
    of drawing a bar (the page follows a pull this way)."""
    from tqdm.auto import tqdm

    class Reporting(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "disable": True})
            self.reported = done

        def update(self, n: float | None = 1) -> bool | None:
            self.reported += int(n or 0)
            progress(self.reported, total)
            return None

    return Reporting


def _finish(part: Path, target: Path, remote: RemoteFile) -> None:
    """Check the downloaded ``part`` against the hub's sha256 and move it into place."""
    digest = _sha256(part)
    if digest != remote.sha256:
        part.unlink()
        raise BackendError(
            f"{remote.path} arrived with sha256 {digest}, but the hub lists {remote.sha256}; "
            "the partial file is deleted, pull again"
        )
    os.replace(part, target)
    sidecar = target.with_name(target.name + ".sha256")
    sidecar.write_text(f"{digest}  {target.name}\n", encoding="ascii")


def _partial(target: Path, remote: RemoteFile) -> tuple[Path, int]:
    """The ``.part`` file of ``target`` and how many bytes of it an earlier pull left."""
    if remote.sha256 is None:
        raise BackendError(
            f"the hub gives no sha256 for {remote.path} (not an LFS file), so it cannot be "
            "checked; kbchat pulls only checked files"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    done = part.stat().st_size if part.is_file() else 0
    if done > remote.size:
        part.unlink()
        done = 0
    return part, done


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _hub_error(exc: Any, repo: str, endpoint: str) -> Exception:
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, RepositoryNotFoundError):
        return NotFound(f"no repository {repo} at {endpoint} (or it needs a token: HF_TOKEN)")
    if isinstance(exc, RevisionNotFoundError | EntryNotFoundError):
        return NotFound(f"{repo} at {endpoint}: {str(exc).splitlines()[0]}")
    status = getattr(getattr(exc, "response", None), "status_code", "?")
    return BackendError(f"{endpoint} answered {status} for {repo}: {str(exc).splitlines()[0]}")


def _is_transport_error(exc: Exception) -> bool:
    """A connection error of the HTTP client huggingface_hub uses (httpx or its successor)."""
    return any(cls.__name__ in ("TransportError", "ConnectError") for cls in type(exc).__mro__)


def modelscope_endpoint(given: str | None = None) -> str:
    """The ModelScope endpoint: ``given``, MODELSCOPE_ENDPOINT, MODELSCOPE_DOMAIN (a host
    name; https:// is added), or https://modelscope.cn."""
    if given or (given := os.environ.get("MODELSCOPE_ENDPOINT", "").strip()):
        return given.rstrip("/")
    domain = os.environ.get("MODELSCOPE_DOMAIN", "").strip()
    if not domain:
        return MODELSCOPE_ENDPOINT
    return (domain if domain.startswith(("http://", "https://")) else f"https://{domain}").rstrip(
        "/"
    )


def _pull_modelscope(
    repo: str,
    filename: str | None,
    target_dir: Path,
    revision: str,
    endpoint: str | None,
    token: str | None,
    progress: Progress | None,
) -> Path:
    import httpx

    base = modelscope_endpoint(endpoint)
    token = token or os.environ.get("MODELSCOPE_API_TOKEN") or None
    headers = (
        {"Authorization": f"Bearer {token}", "Cookie": f"m_session_id={token}"} if token else {}
    )
    timeout = httpx.Timeout(30.0, read=120.0)
    try:
        with httpx.Client(
            base_url=base, headers=headers, timeout=timeout, follow_redirects=True
        ) as client:
            remote = _choose(repo, filename, _modelscope_files(client, base, repo, revision))
            target = (
                Path(target_dir).expanduser() / repo.replace("/", "--") / Path(remote.path).name
            )
            if not _verified(target, remote):
                part, done = _partial(target, remote)
                params = {"Revision": revision, "FilePath": remote.path}
                _stream_to(
                    client, f"/api/v1/models/{repo}/repo", params, part, done, remote, progress
                )
                _finish(part, target, remote)
    except httpx.TransportError as exc:
        raise BackendError(f"cannot reach {base} for {repo}: {exc}") from None
    return target


def _modelscope_files(client: Any, base: str, repo: str, revision: str) -> list[RemoteFile]:
    response = client.get(
        f"/api/v1/models/{repo}/repo/files", params={"Revision": revision, "Recursive": "True"}
    )
    body = _json(response)
    message = str(body.get("Message") or "") if isinstance(body, dict) else ""
    if response.status_code == 404 or (isinstance(body, dict) and body.get("Code") == 404):
        raise NotFound(
            f"no repository {repo} (revision {revision}) at {base}: {message}".rstrip(": ")
        )
    if response.status_code != 200 or not isinstance(body, dict) or body.get("Success") is False:
        raise BackendError(
            f"{base} answered {response.status_code} for {repo}: {message or response.text[:200]}"
        )
    data = body.get("Data") or {}
    entries = data.get("Files", []) if isinstance(data, dict) else data
    return [
        RemoteFile(str(e["Path"]), int(e.get("Size") or 0), e.get("Sha256") or None)
        for e in entries
        if e.get("Type", "blob") != "tree"
    ]


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _stream_to(
    client: Any,
    url: str,
    params: dict[str, str],
    part: Path,
    done: int,
    remote: RemoteFile,
    progress: Progress | None,
) -> None:
    """Append the rest of ``remote`` (from byte ``done``) to ``part``."""
    headers = {"Range": f"bytes={done}-"} if done else {}
    with client.stream("GET", url, params=params, headers=headers) as response:
        if response.status_code == 200 and done:
            done = 0  # the server sent the whole file: start again
        elif response.status_code not in (200, 206):
            response.read()
            raise BackendError(
                f"{client.base_url} answered {response.status_code} for {remote.path}: "
                f"{response.text[:200]}"
            )
        with part.open("ab" if done else "wb") as stream:
            for block in response.iter_bytes(2**20):
                stream.write(block)
                done += len(block)
                if progress is not None:
                    progress(done, remote.size)

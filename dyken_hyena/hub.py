# Copyright 2025 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
"""Upload a local folder to a Hugging Face Hub repository: model checkpoints and converted datasets alike.

    from dyken_hyena.hub import HubUploadError, upload_folder

    commit = upload_folder("outputs/dyken/best_checkpoint", "USER/dyken-hyena-mintrec")
    commit = upload_folder("mintrec-parquet", "USER/mintrec", repo_type="dataset", private=True)

Every failure of the Hub calls raises a `HubUploadError` whose message names the step that failed (creating
the repository or uploading the files), the repository, the HTTP status when the Hub answered, and what to try
next. The original error stays chained as `__cause__`.
"""

import os
from pathlib import Path

from huggingface_hub import CommitInfo, HfApi
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled

# huggingface_hub's public handle on its HTTP backend (httpx2 in huggingface_hub 2.x, httpx in 1.x). When no
# answer comes back at all (name resolution, refused connection, TLS, timeout, proxy), huggingface_hub retries,
# then re-raises the backend's own error, a subclass of `TransportError`.
from huggingface_hub.utils import httpx as hub_http_backend


# No answer from the Hub: no network, or HF_HUB_OFFLINE=1.
HUB_UNREACHABLE = (hub_http_backend.TransportError, OfflineModeIsEnabled)
# What a Hub call can raise that is not a bug in the caller.
HUB_FAILURES = (
    HfHubHTTPError,  # the Hub answered with an HTTP error; RepositoryNotFoundError, BadRequestError, ... included
    HFValidationError,  # the repository id is malformed
    *HUB_UNREACHABLE,
    # A file transfer failed: huggingface_hub wraps the HTTP error of a large-file (LFS) upload in a RuntimeError,
    # and the Xet storage client raises RuntimeError or OSError subclasses.
    RuntimeError,
    OSError,
)


class HubUploadError(RuntimeError):
    """A Hub call of `upload_folder` failed.

    Attributes:
        step: "create_repo" or "upload".
        repo_id, repo_type: the target repository.
        status_code: the HTTP status the Hub answered with, or None when it gave no answer (no network, ...).
    """

    def __init__(self, message: str, *, step: str, repo_id: str, repo_type: str, status_code: int = None):
        super().__init__(message)
        self.step = step
        self.repo_id = repo_id
        self.repo_type = repo_type
        self.status_code = status_code


def _http_error_of(error: BaseException):
    """The `HfHubHTTPError` behind `error` (itself, or the cause of a failed file transfer), or None."""
    while error is not None and not isinstance(error, HfHubHTTPError):
        error = error.__cause__
    return error


def _advice(error: Exception, status_code, repo_id: str) -> str:
    """What the user can do about `error`, in one or two sentences."""
    namespace = repo_id.split("/")[0] if "/" in repo_id else "your user name"
    if isinstance(error, HFValidationError):
        return "Repository ids look like USER/NAME or ORG/NAME."
    if status_code == 401:
        return "The Hub did not accept the token: log in with `hf auth login`, set HF_TOKEN, or pass a valid token."
    if status_code == 403:
        return (
            f"The token may not write to '{namespace}': use a token with write permission for that user or "
            "organisation (https://huggingface.co/settings/tokens)."
        )
    if status_code == 404:
        return f"Check the repository id, that '{namespace}' exists and that the token can see it."
    if status_code is not None and (status_code == 429 or status_code >= 500):
        return "The Hub is busy or failing: wait a little and run the same upload again."
    if isinstance(error, HUB_UNREACHABLE):
        return (
            "Check the network connection, the proxy settings (HTTPS_PROXY) and HF_ENDPOINT, and that "
            "HF_HUB_OFFLINE is not set."
        )
    return "Check the token, its permissions on the repository, and the network connection."


def _upload_error(error: Exception, step: str, doing: str, repo_id: str, repo_type: str, after: str = ""):
    """The `HubUploadError` for `error`, raised while `doing` ("Creating the Hub model repository USER/NAME")."""
    http_error = _http_error_of(error)
    status_code = None if http_error is None else http_error.response.status_code
    if http_error is not None:
        reason = f"HTTP {status_code}" + (f" ({http_error.server_message})" if http_error.server_message else "")
    elif isinstance(error, HUB_UNREACHABLE):
        reason = f"the Hub could not be reached ({type(error).__name__}: {error})"
    else:
        reason = f"{type(error).__name__}: {error}"
    message = f"{doing} failed: {reason.rstrip('.')}. {_advice(error, status_code, repo_id)}{after}"
    return HubUploadError(message, step=step, repo_id=repo_id, repo_type=repo_type, status_code=status_code)


def upload_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    repo_type: str = "model",
    token: str = None,
    private: bool = False,
    commit_message: str = "Upload folder",
    allow_patterns: list = None,
    ignore_patterns: list = None,
) -> CommitInfo:
    """Upload the content of `folder` to the Hub repository `repo_id` in one commit; return its `CommitInfo`.

    The repository is created first if it does not exist (`private` only applies then). The folder is only read.

    Args:
        folder: the local folder; its layout becomes the repository's.
        repo_id: "USER/NAME" or "ORG/NAME".
        repo_type: "model" or "dataset".
        token: a Hub token with write access; None uses HF_TOKEN or the token saved by `hf auth login`.
        private: create the repository as private.
        commit_message: the commit's title.
        allow_patterns, ignore_patterns: glob patterns of the files to upload / to skip (as in
            `huggingface_hub.HfApi.upload_folder`).

    Raises:
        NotADirectoryError: `folder` is not a folder.
        HubUploadError: a Hub call failed; `step`, `repo_id` and `status_code` say where and how.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"Nothing to upload to {repo_id}: {folder} is not a folder.")
    api = HfApi(token=token)
    try:
        repo_url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    except HUB_FAILURES as error:
        doing = f"Creating the Hub {repo_type} repository {repo_id}"
        raise _upload_error(error, "create_repo", doing, repo_id, repo_type) from error
    try:
        return api.upload_folder(
            folder_path=folder,
            repo_id=repo_url.repo_id,
            repo_type=repo_type,
            commit_message=commit_message,
            allow_patterns=allow_patterns,
            ignore_patterns=ignore_patterns,
        )
    except HUB_FAILURES as error:
        doing = f"Uploading the files of {folder} to the Hub {repo_type} repository {repo_id}"
        after = f" The repository exists and {folder} is unchanged: the same upload can be run again."
        raise _upload_error(error, "upload", doing, repo_id, repo_type, after) from error

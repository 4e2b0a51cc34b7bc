"""Images in a prediction: what a vision model "sees", and the refusal of one that can't.

LM Studio resolves every ``file`` part of a history against the files the *same client*
uploaded (they die with the client's last socket) and refuses images sent to a model without
vision. The simulated vision model answers from what it received: each image's name, type and
size as the server measured them at upload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import _models
from ._catalog import Instance
from ._envelope import SimulatorError, serialized_error

__all__ = ["ReceivedFile", "describe_images", "received_files"]

NO_VISION = "Model does not support images. Please use a model that does."


@dataclass(frozen=True)
class ReceivedFile:
    """A file part of the last user message, as the server knows the upload."""

    name: str
    file_type: str
    size_bytes: int


def _file_parts(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content", [])
    if not isinstance(content, list):
        return []
    return [p for p in content if isinstance(p, Mapping) and p.get("type") == "file"]


def received_files(
    uploads: Mapping[str, Mapping[str, Any]], instance: Instance, history: Mapping[str, Any]
) -> list[ReceivedFile]:
    """The files of the last user message; a LM Studio error for unknown files or no vision.

    ``uploads`` is the requesting client's ``identifier -> {name, sizeBytes, fileType}``.
    """
    messages = [m for m in history.get("messages", []) if isinstance(m, Mapping)]
    every_file = [part for message in messages for part in _file_parts(message)]
    for part in every_file:
        identifier = str(part.get("identifier", ""))
        if identifier not in uploads:
            raise SimulatorError(
                serialized_error(
                    f'File "{identifier}" not found',
                    cause="The file was not uploaded by this client, or the client disconnected "
                    "since (temporary files are deleted with the client's last connection).",
                    suggestion="Upload the file again.",
                )
            )
    if not instance.spec.vision and any(
        uploads[str(p["identifier"])]["fileType"] == "image" for p in every_file
    ):
        raise SimulatorError(serialized_error(NO_VISION))
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    if last_user is None:
        return []
    received = []
    for part in _file_parts(last_user):
        upload = uploads[str(part["identifier"])]
        received.append(
            ReceivedFile(str(part.get("name", "")), upload["fileType"], upload["sizeBytes"])
        )
    return received


def describe_images(files: list[ReceivedFile], history: Mapping[str, Any]) -> str:
    """The vision model's reply: ``I see 1 image: cat.png (image, 1234 bytes). You said: ...``.

    Without user text the sentence ends after the list of files.
    """
    listed = ", ".join(f"{f.name} ({f.file_type}, {f.size_bytes} bytes)" for f in files)
    kind = "image" if all(f.file_type == "image" for f in files) else "file"
    noun = kind if len(files) == 1 else f"{kind}s"
    reply = f"I see {len(files)} {noun}: {listed}."
    said = _models.default_reply(_without_files(history))
    if said.startswith("You said: "):
        reply += f" {said}"
    return reply


def _without_files(history: Mapping[str, Any]) -> dict[str, Any]:
    messages = []
    for message in history.get("messages", []):
        content = message.get("content", [])
        if isinstance(content, list):
            content = [
                p for p in content if not (isinstance(p, Mapping) and p.get("type") == "file")
            ]
        messages.append({**message, "content": content})
    return {"messages": messages}

"""Chat models: the ChatModel protocol and the backends registered in ``kbchat.registry``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kbchat.errors import ConfigError
from kbchat.llm.base import (
    ChatModel,
    ForcedTool,
    ResponseFormat,
    complete,
    complete_message,
    estimate_tokens,
)
from kbchat.llm.structured import StructuredOutputError, complete_json
from kbchat.registry import chat_models

if TYPE_CHECKING:
    from kbchat.config import ModelSettings

__all__ = [
    "ChatModel",
    "ForcedTool",
    "ResponseFormat",
    "StructuredOutputError",
    "build_chat_model",
    "complete",
    "complete_json",
    "complete_message",
    "estimate_tokens",
]


def build_chat_model(name: str, settings: ModelSettings, models_dir: Path) -> ChatModel:
    """Build the chat model configured as ``models.<name>``.

    Args:
        name: The name clients use for the model (the key in ``Settings.models``).
        settings: Its settings; ``settings.backend`` names a ``chat_models`` backend.
        models_dir: Where embedded models are assembled (``Settings.models_dir``).

    Raises:
        ConfigError: the backend is unknown or the settings do not suit it; the
            message names ``models.<name>``.
        MissingDependency: the backend needs an extra that is not installed.
    """
    factory = chat_models.factory(settings.backend)
    options = settings.model_dump(exclude={"backend"})
    try:
        model: ChatModel = factory(name=name, models_dir=models_dir, **options)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f"models.{name} ({settings.backend}): {exc}") from exc
    return model

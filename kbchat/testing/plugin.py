"""The test fakes as a kbchat plugin: ``register()`` adds them to the registries.

Tests load it in-process (``tests/conftest.py``) and name it in the ``plugins`` setting
(``KBCHAT_PLUGINS``) for the child processes they start, so a CLI or server run by a test
can build the fakes by name. Production registries never hold them.
"""

from __future__ import annotations

from kbchat.registry import chat_models, embedders

EMBEDDER = "hash"
CHAT_MODEL = "scripted"


def register() -> None:
    """Register the hash embedder and the scripted chat model under their names."""
    embedders.register(EMBEDDER, "kbchat.testing.fakes:HashEmbedder")
    chat_models.register(CHAT_MODEL, "kbchat.testing.fakes:ScriptedChatModel")

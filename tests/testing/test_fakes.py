"""The test fakes keep the contracts of the backends they stand in for."""

from __future__ import annotations

from kbchat.config import load_settings
from kbchat.embed.base import Embedder
from kbchat.llm.base import ChatModel
from kbchat.registry import chat_models, embedders
from kbchat.testing import plugin
from kbchat.testing.contracts import ChatModelContract, EmbedderContract
from kbchat.testing.fakes import HashEmbedder, ScriptedChatModel


class TestHashEmbedderContract(EmbedderContract):
    def make_embedder(self) -> Embedder:
        return HashEmbedder(dim=256)


class TestScriptedChatModelContract(ChatModelContract):
    def make_model(self, reply: str) -> ChatModel:
        return ScriptedChatModel([reply])


def test_the_plugin_registers_the_fakes_for_tests_and_their_child_processes() -> None:
    assert isinstance(embedders.create(plugin.EMBEDDER), HashEmbedder)
    assert isinstance(chat_models.create(plugin.CHAT_MODEL), ScriptedChatModel)
    assert load_settings().plugins == [plugin.__name__]  # KBCHAT_PLUGINS, set by conftest

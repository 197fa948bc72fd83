"""Adding chat models to kbchat.toml: ``kbchat models add|pull`` and the page's models view.

The file keeps the user's comments (``kbchat.config_file``) and is checked before it is saved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbchat.errors import BadInput

if TYPE_CHECKING:
    from kbchat.config import Settings


def save_model(
    settings: Settings, name: str, values: dict[str, object], *, default: bool
) -> Settings:
    """Add model ``name`` (its ``[models.NAME]`` table holds ``values``) to kbchat.toml.

    Returns:
        The settings as saved.

    Raises:
        BadInput: a model of that name is configured already.
        ConfigError: the result would not load (the message names the key).
    """
    from kbchat.config_file import change_config, table

    if name in settings.models:
        raise BadInput(f"a model named {name!r} exists already; `kbchat models rm {name}` first")

    def edit(document: Any) -> None:
        keep_configured(document, settings)
        model = table(document, "models", name)
        for key, value in values.items():
            model[key] = value
        if default:
            document["default_model"] = name

    return change_config(edit)


def keep_configured(document: Any, settings: Settings) -> None:
    """Write the models the settings have by default before the file gets a [models] table
    of its own (which replaces the defaults)."""
    from kbchat.config_file import table

    if "models" not in document:
        for existing in settings.models:
            table(document, "models", existing)

"""A desktop host's session slots: each session actor narrows the host's settings to one."""

from __future__ import annotations

from computer_use.config import Settings


def slot_settings(settings: Settings, slot: int) -> Settings:
    """The host's settings narrowed to its slot `slot`: one desktop on its own users, display
    and data directory; `instance` stays the host's name."""
    return settings.model_copy(
        update={
            "data_dir": settings.data_dir / "slots" / str(slot),
            "max_displays": 1,
            "desktop_display_base": settings.desktop_display_base + slot,
            "desktop_user_prefix": f"{settings.desktop_user_prefix}{slot}-",
            "warm_pool_size": 0,
            "instance_name": settings.instance,
        }
    )

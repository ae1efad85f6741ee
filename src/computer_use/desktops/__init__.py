"""Per-session desktops: Xvfb + window manager + VNC + Firefox, screenshots and input.

Process control only: no HTTP, no database. The service layer owns one DesktopManager.
"""

from computer_use.desktops.desktop import Desktop
from computer_use.desktops.errors import (
    DesktopCapacityError,
    DesktopError,
    DesktopExists,
    DesktopInputError,
    DesktopNotFound,
    DesktopStartError,
)
from computer_use.desktops.manager import DesktopManager
from computer_use.desktops.supervisor import EventCallback

__all__ = [
    "Desktop",
    "DesktopCapacityError",
    "DesktopError",
    "DesktopExists",
    "DesktopInputError",
    "DesktopManager",
    "DesktopNotFound",
    "DesktopStartError",
    "EventCallback",
]

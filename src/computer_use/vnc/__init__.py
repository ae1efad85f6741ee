"""VNC in the browser: signed tokens, the noVNC viewer page and a view-only-enforcing proxy."""

from computer_use.vnc.logfilter import install_token_log_filter
from computer_use.vnc.router import create_router, router
from computer_use.vnc.targets import SessionVncTargets, VncTargets
from computer_use.vnc.tokens import VncGrant, VncTokenError, VncTokens
from computer_use.vnc.viewer import vnc_url_for

__all__ = [
    "SessionVncTargets",
    "VncGrant",
    "VncTargets",
    "VncTokenError",
    "VncTokens",
    "create_router",
    "install_token_log_filter",
    "router",
    "vnc_url_for",
]

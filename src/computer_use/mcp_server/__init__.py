"""MCP server at /mcp: tools that adapt the session, desktop and agent services.

main.create_app calls `mount.mount_mcp`; the lifespan enters `mount.mcp_running`.
"""

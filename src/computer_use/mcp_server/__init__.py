"""MCP server at /mcp: tools that adapt the session, desktop and agent services (tasks through
agent.tasks.TaskTracker), and the live desktop as an MCP App.

main.create_app calls `mount.mount_mcp`; the lifespan enters `mount.mcp_running`.
"""

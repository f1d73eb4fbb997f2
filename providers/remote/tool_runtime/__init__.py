"""Tool runtime adapters to remote services (MCP servers, web search APIs)."""

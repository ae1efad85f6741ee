"""The three-panel web console (static files) and the router that serves them."""

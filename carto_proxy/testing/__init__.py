"""carto_proxy's testing kit: a real recording proxy, helpers and pytest fixtures."""

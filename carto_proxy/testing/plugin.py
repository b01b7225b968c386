"""pytest plugin for carto_proxy's testing kit (registered through the ``pytest11`` entry point).

Placeholder until the fixtures land: registers nothing.
"""

"""One module per probe kind (see :mod:`evalsuite.probes.registry`): its config, its details, how to build
it and how the report shows it. Every module here is imported when the first kind is looked up; a module
whose name starts with ``_`` is not."""

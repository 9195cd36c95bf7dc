"""Family-agnostic foundations: validation, streams, files, communication, histories and results.

Nothing here imports a family, an initializer, a routine or anything above them
(the import contract in ``pyproject.toml`` checks it).
"""

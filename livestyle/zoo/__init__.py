"""The model zoo: what models exist, where their files are, and what a name means.

- ``catalog``: ``catalog.json`` read and written in one place (entries, add, one encoding).
- ``modelfile``: model files saved, loaded and verified (safetensors, no pickle).
- ``registry``: (task, family) → network builder.
- ``choice``: what ``--style``, ``--model`` and ``--superres`` load; plain names and variants.
- ``provenance``: credit and licence of the known style images and training photo sets.
- ``community``: pytorch/examples checkpoints and ONNX files; ``importer``: `livestyle import`.

May import: ``livestyle.models``, ``livestyle.files``, ``livestyle.errors``. ``catalog`` itself
loads no torch, so listing the catalog is quick.
"""

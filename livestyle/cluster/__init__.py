"""Past one machine: `livestyle batch`, every file of a library as one task on a Ray cluster (a local
one by default), each running the code of `livestyle video` / `image` (``livestyle.pipeline.jobs``).

- ``inputs``: files, folders and globs → the files to do, with the relative paths of their outputs.
- ``manifest``: what OUTDIR holds and from what (input size, mtime, sha256; model sha256; options),
  so that a rerun skips finished outputs and redoes changed ones.
- ``plan``: the batch's jobs (a file, or a part of a long video) and the engine settings they share.
- ``worker``: the Ray actor that holds one engine and runs jobs; ``runner``: the driver (Ray, retries,
  progress, Ctrl-C, joining the parts of split videos).

Ray is imported inside the functions that need it (the `cluster` extra). May import:
``livestyle.pipeline``, ``livestyle.engines``, ``livestyle.zoo``, ``livestyle.io``,
``livestyle.files``, ``livestyle.errors``.
"""

RAY_MISSING = "livestyle batch needs Ray: pip install 'livestyle[cluster]'"
MANIFEST_FILE = "livestyle-batch.json"  # in OUTDIR: what each output was made from
PARTS_FOLDER = ".livestyle-parts"  # in OUTDIR: the encoded parts of split videos until they are joined

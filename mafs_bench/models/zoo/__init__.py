"""The model zoo: float16 copies of the embedded suites' trained weights (data, no code).

``<kind>/<key>.safetensors`` with its recipe ``<key>.json``, written by ``mafs-bench train
SUITE --ship`` and read by :func:`mafs_bench.models.cache.load_weights` on a cache miss; the
key covers config and code, so an entry is only ever used by the code that trained it.
"""

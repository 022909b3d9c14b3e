import os

# One OpenBLAS thread per server process, set before anything imports numpy. The server's numpy work is
# tiny matrix products (the nudity head on a batch's few vectors, agreement checks), where OpenBLAS's
# worker threads cost far more than they save: they spin after every product, and on a 2-core machine
# daphne's verification measured 6.5 ms of CPU per received frame with the default threads against
# 1.6 ms with one (docs/benchmarks.md). TensorFlow does not use OpenBLAS for its kernels (it keeps its
# own intra-op pool), so the CNN keeps its threads. setdefault: an operator's explicit value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from hydra_site.celery import app as celery_app

__all__ = ("celery_app",)

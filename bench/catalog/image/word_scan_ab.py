"""Word-stage scan A/B (2026-11-27): the same postings in this project's CSR (``image_words._scan``) and in
a FAISS ``IndexBinaryIVF`` searched with ``range_search_preassigned`` (the code before), in one process,
queries interleaved (200 seed-0 copies and 200 new uploads, two passes in opposite orders); the hits of
each query are compared as sets. The catalog is ``run.py``'s (real fingerprints and distractors), words only.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.catalog.image.word_scan_ab 1000000 out.json
"""
# ruff: noqa: E402, E501, E701, E702
import json
import os
import random
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import faiss
import numpy as np

from bench.catalog.image.distractors import Distractors
from bench.catalog.image.real import load as load_real
from bench.image import dataset
from shared.index import image_words as W
from shared.kinds.image import ImageFingerprint
from shared.settings import Settings

faiss.omp_set_num_threads(1)
N = int(sys.argv[1])
real = {k: ImageFingerprint.from_bytes(v) for k, v in load_real().items()}
names = sorted(k for k in real if k.startswith("orig/") or k.startswith("seed1/"))
pool = [real[n] for n in names]
gen = Distractors(pool, 20261125); bgen = Distractors(pool, 20261126)
s = Settings.from_env().index
st = W.WordStage(s.image_local_keypoints, s.image_code_max_bits, s.image_local_min_votes,
                 s.image_query_cells_per_half, s.image_stop_word_factor)
alive = np.ones(N, bool)
t0 = time.perf_counter()
st.add_many(np.arange(len(names)), [real[n].features for n in names], alive)
for a in range(len(names), N, 20000):
    b = min(a + 20000, N)
    st.add_many(np.arange(a, b), [gen.make(i - len(names)).features for i in range(a, b)], alive)
st.purge(alive)
print("built", N, round(time.perf_counter() - t0), "s", flush=True)
run = st._lists._runs[0]
ivf = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(64), 64, W.N_WORDS); ivf.is_trained = True
for a in range(0, len(run), 1 << 24):  # in chunks: the int64 copies stay small
    b = min(a + (1 << 24), len(run))
    keys = np.searchsorted(run.offsets, np.arange(a, b), "right").astype(np.int64) - 1
    lab = run.slots[a:b].astype(np.int64); c8 = np.ascontiguousarray(run.payload[a:b]).view(np.uint8).reshape(-1, 8)
    ivf.add_core(b - a, faiss.swig_ptr(c8), faiss.swig_ptr(lab), faiss.swig_ptr(keys))
print("faiss copy built", flush=True)
def faiss_hits(desc, words):
    codes, distances = W.codes_of(desc), np.zeros(words.shape, np.int32)
    rows = len(desc); found = faiss.RangeSearchResult(rows); ivf.nprobe = words.shape[1]
    w = np.ascontiguousarray(words)
    ivf.range_search_preassigned_c(rows, faiss.swig_ptr(codes), st.code_max_bits + 1, faiss.swig_ptr(w), faiss.swig_ptr(distances), found)
    lims = faiss.rev_swig_ptr(found.lims, rows + 1).astype(np.int64)
    labels = faiss.rev_swig_ptr(found.labels, int(lims[-1])).copy() if lims[-1] else np.zeros(0, np.int64)
    return labels, np.repeat(np.arange(rows, dtype=np.int64), np.diff(lims))
positives = [p for p in dataset.build(0) if p.label == 1]
rng = random.Random(5)
queries = [("copy", real[p.target]) for p in rng.sample(positives, 200)] + [("upload", bgen.make(i)) for i in range(200)]
qs = []
for kind, q in queries:
    f = q.features
    desc = np.concatenate([f.descriptors(), f.descriptors(mirror=True)])
    words = st.query_words(desc)
    qs.append((kind, desc, words))
same = 0
T = {("faiss", "copy"): [], ("faiss", "upload"): [], ("kernel", "copy"): [], ("kernel", "upload"): []}
for rep in range(2):
    for kind, desc, words in qs:
        for name in (("faiss", "kernel") if rep == 0 else ("kernel", "faiss")):
            t = time.perf_counter()
            r = faiss_hits(desc, words) if name == "faiss" else st.hits(desc, words, alive)
            T[(name, kind)].append((time.perf_counter() - t) * 1000)
            if rep == 0:
                if name == "faiss":
                    ref = sorted(zip(r[0].tolist(), r[1].tolist(), strict=True))
                else:
                    same += sorted(zip(r[0].tolist(), r[1].tolist(), strict=True)) == ref
out = {"items": N, "postings": len(run), "queries_identical": same, "of": len(qs),
       "ms_p50": {f"{a} {b}": round(float(np.median(v)), 2) for (a, b), v in T.items()},
       "ms_p99": {f"{a} {b}": round(float(np.percentile(v, 99)), 2) for (a, b), v in T.items()},
       "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
       "cpu": subprocess.run(["sh", "-c", "lscpu | grep 'Model name'"], capture_output=True, text=True).stdout.strip()}
print(json.dumps(out), flush=True)
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as fh:
        json.dump(out, fh, indent=1)

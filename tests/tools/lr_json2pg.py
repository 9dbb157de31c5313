#!/usr/bin/env python3
"""Baseline 2: copy a LightRAG 1.5.7 JSON working dir into PostgreSQL using ONLY LightRAG's own storage classes.

What a Python user would write: open the dir with JsonKVStorage x7 / NanoVectorDBStorage x3 / NetworkXStorage /
JsonDocStatusStorage, read every record through them, and upsert it through PGKVStorage / PGVectorStorage
(EmbeddingFunc with model_name, so tables are lightrag_vdb_*_<model>_<dim>d) / PGDocStatusStorage /
PGTableGraphStorage, in batches of --batch (1000).

 * KV: keys from the loaded namespace dict, records via get_by_ids(batch) -> PGKVStorage.upsert(batch).
 * vectors: PGVectorStorage.upsert() only buffers and re-embeds `content` at flush time, and has no API taking a
   precomputed vector. So the EmbeddingFunc given to PG is a lookup content -> stored vector, filled per batch from
   NanoVectorDBStorage.get_vectors_by_ids() (the float16 `vector` field = the raw, un-normalised embedding, which
   is what LightRAG's PG backend stores). index_done_callback() after each batch flushes it.
   Chunk rows are joined with text_chunks (tokens, chunk_order_index), as LightRAG's pipeline does.
 * graph: get_all_nodes()/get_all_edges() -> upsert_nodes_batch / upsert_edges_batch.
 * doc status: get_by_ids(batch) -> PGDocStatusStorage.upsert(batch).
Prints one JSON line with per-store seconds and counts (and, when --max-seconds stopped it, `in_progress`:
the store it was copying with records done / total).
(Copied from the acceptance kit's lr_json2pg.py; only the `in_progress` report was added.)

usage: /usr/bin/time -v /tmp/lr157venv/bin/python lr_json2pg.py WORKDIR DSN [--workspace bench] [--model synth-embed]
       [--batch 1000] [--only kv,vdb,graph,doc_status] [--max-seconds S]
"""
import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import urllib.parse

T_START = time.perf_counter()
p = argparse.ArgumentParser()
p.add_argument("workdir")
p.add_argument("dsn")
p.add_argument("--workspace", default="bench", help="PG workspace to write")
p.add_argument("--src-workspace", default="", help="JSON workspace subfolder")
p.add_argument("--model", default="bench-embed")
p.add_argument("--batch", type=int, default=1000)
p.add_argument("--only", default="kv,vdb,graph,doc_status")
p.add_argument("--max-seconds", type=float, default=0, help="stop after this many seconds (partial run)")
ARGS = p.parse_args()
u = urllib.parse.urlparse(ARGS.dsn)
os.environ["POSTGRES_HOST"] = u.hostname or "localhost"
os.environ["POSTGRES_PORT"] = str(u.port or 5432)
os.environ["POSTGRES_USER"] = urllib.parse.unquote(u.username or "postgres")
os.environ["POSTGRES_PASSWORD"] = urllib.parse.unquote(u.password) if u.password else "unused"
os.environ["POSTGRES_DATABASE"] = (u.path or "/postgres").lstrip("/") or "postgres"
os.chdir(tempfile.gettempdir())

import numpy as np  # noqa: E402
from lightrag.kg.shared_storage import initialize_share_data  # noqa: E402
from lightrag.kg.json_kv_impl import JsonKVStorage  # noqa: E402
from lightrag.kg.nano_vector_db_impl import NanoVectorDBStorage  # noqa: E402
from lightrag.kg.networkx_impl import NetworkXStorage  # noqa: E402
from lightrag.kg.json_doc_status_impl import JsonDocStatusStorage  # noqa: E402
from lightrag.kg.postgres_impl import PGKVStorage, PGVectorStorage, PGDocStatusStorage  # noqa: E402
from lightrag.kg.pgtable_impl import PGTableGraphStorage  # noqa: E402
from lightrag.namespace import NameSpace  # noqa: E402
from lightrag.utils import EmbeddingFunc, setup_logger  # noqa: E402

setup_logger("lightrag", level=os.environ.get("LR_LOG_LEVEL", "ERROR"))

KV_NS = ["full_docs", "text_chunks", "full_entities", "full_relations", "entity_chunks", "relation_chunks",
         "llm_response_cache"]
META = {"entities": {"entity_name", "source_id", "content", "file_path"},
        "relationships": {"src_id", "tgt_id", "source_id", "content", "file_path"},
        "chunks": {"full_doc_id", "content", "file_path"}}
LOOKUP: dict = {}
# The store being copied and how far it got, so a --max-seconds stop can say how much was copied.
CUR: dict = {}


def vdb_dim(path):
    with open(path, "rb") as f:
        m = re.search(rb'"embedding_dim":\s*(\d+)', f.read(64))
    return int(m.group(1)) if m else 1024


class Deadline(Exception):
    pass


def check_deadline():
    if ARGS.max_seconds and time.perf_counter() - T_START > ARGS.max_seconds:
        raise Deadline()


async def main():
    wd = os.path.abspath(ARGS.workdir)
    sws = ARGS.src_workspace
    data_dir = os.path.join(wd, sws) if sws else wd
    dim = vdb_dim(os.path.join(data_dir, "vdb_chunks.json"))
    size = sum(os.path.getsize(os.path.join(data_dir, f)) for f in os.listdir(data_dir)
               if f.endswith((".json", ".graphml")) and f != "COUNTS.json")

    async def lookup_embed(texts, **kw):
        return np.stack([LOOKUP[t] for t in texts]).astype(np.float32)

    ef = EmbeddingFunc(embedding_dim=dim, func=lookup_embed, max_token_size=8192, model_name=ARGS.model)
    jgc = {"working_dir": wd, "embedding_batch_num": ARGS.batch, "max_graph_nodes": 1000,
           "vector_db_storage_cls_kwargs": {"cosine_better_than_threshold": 0.2}}
    pgc = dict(jgc, working_dir=tempfile.mkdtemp(prefix="lr2pg_"), kv_storage="PGKVStorage",
               vector_storage="PGVectorStorage", graph_storage="PGTableGraphStorage",
               doc_status_storage="PGDocStatusStorage")
    initialize_share_data()
    only = set(ARGS.only.split(","))
    times, counts, partial = {}, {}, False
    t = time.perf_counter()
    jkv = {ns: JsonKVStorage(namespace=ns, workspace=sws, global_config=jgc, embedding_func=ef) for ns in KV_NS}
    jvdb = {ns: NanoVectorDBStorage(namespace=ns, workspace=sws, global_config=jgc, embedding_func=ef,
                                    meta_fields=META[ns]) for ns in META}
    jg = NetworkXStorage(namespace=NameSpace.GRAPH_STORE_CHUNK_ENTITY_RELATION, workspace=sws, global_config=jgc,
                         embedding_func=ef)
    jds = JsonDocStatusStorage(namespace=NameSpace.DOC_STATUS, workspace=sws, global_config=jgc, embedding_func=None)
    for s in list(jkv.values()) + list(jvdb.values()) + [jg, jds]:
        await s.initialize()
    times["json_load"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    ws = ARGS.workspace
    pkv = {ns: PGKVStorage(namespace=ns, workspace=ws, global_config=pgc, embedding_func=ef) for ns in KV_NS}
    pvdb = {ns: PGVectorStorage(namespace=ns, workspace=ws, global_config=pgc, embedding_func=ef,
                                meta_fields=META[ns]) for ns in META}
    pds = PGDocStatusStorage(namespace=NameSpace.DOC_STATUS, workspace=ws, global_config=pgc, embedding_func=None)
    pg = PGTableGraphStorage(namespace=NameSpace.GRAPH_STORE_CHUNK_ENTITY_RELATION, workspace=ws, global_config=pgc,
                             embedding_func=ef)
    pstores = list(pkv.values()) + list(pvdb.values()) + [pds, pg]
    for s in pstores:
        await s.initialize()
    times["pg_init"] = round(time.perf_counter() - t, 3)
    B = ARGS.batch
    try:
        if "kv" in only:
            for ns in KV_NS:
                t = time.perf_counter()
                keys = list(jkv[ns]._data.keys())  # JsonKVStorage has no public "all keys" API
                n = 0
                for i in range(0, len(keys), B):
                    ids = keys[i:i + B]
                    recs = await jkv[ns].get_by_ids(ids)
                    await pkv[ns].upsert({k: r for k, r in zip(ids, recs) if r is not None})
                    n += len(ids)
                    CUR.update(store=f"kv.{ns}", n=n, total=len(keys))
                    check_deadline()
                times[f"kv.{ns}"] = round(time.perf_counter() - t, 3)
                counts[f"kv.{ns}"] = n
        if "doc_status" in only:
            t = time.perf_counter()
            keys = list(jds._data.keys())
            n = 0
            for i in range(0, len(keys), B):
                ids = keys[i:i + B]
                recs = await jds.get_by_ids(ids)
                await pds.upsert({k: r for k, r in zip(ids, recs) if r is not None})
                n += len(ids)
                CUR.update(store="doc_status", n=n, total=len(keys))
                check_deadline()
            times["doc_status"] = round(time.perf_counter() - t, 3)
            counts["doc_status"] = n
        if "graph" in only:
            t = time.perf_counter()
            nodes = await jg.get_all_nodes()
            edges = await jg.get_all_edges()  # read up front so progress can count nodes + edges
            for i in range(0, len(nodes), B):
                await pg.upsert_nodes_batch([(nd.pop("id"), nd) for nd in nodes[i:i + B]])
                CUR.update(store="graph", n=min(i + B, len(nodes)), total=len(nodes) + len(edges))
                check_deadline()
            for i in range(0, len(edges), B):
                await pg.upsert_edges_batch([(e.pop("source"), e.pop("target"), e) for e in edges[i:i + B]])
                CUR.update(store="graph", n=len(nodes) + min(i + B, len(edges)), total=len(nodes) + len(edges))
                check_deadline()
            await pg.index_done_callback()
            times["graph"] = round(time.perf_counter() - t, 3)
            counts["graph.nodes"], counts["graph.edges"] = len(nodes), len(edges)
        if "vdb" in only:
            for ns in ("chunks", "entities", "relationships"):
                t = time.perf_counter()
                rows = (await jvdb[ns].client_storage)["data"]
                n = 0
                for i in range(0, len(rows), B):
                    part = rows[i:i + B]
                    ids = [r["__id__"] for r in part]
                    vecs = await jvdb[ns].get_vectors_by_ids(ids)
                    payload = {}
                    if ns == "chunks":
                        tcs = await jkv["text_chunks"].get_by_ids(ids)
                    for j, r in enumerate(part):
                        rec = {k: r[k] for k in META[ns] if k in r}
                        if ns == "chunks":
                            tc = tcs[j] or {}
                            rec["tokens"] = tc.get("tokens", 0)
                            rec["chunk_order_index"] = tc.get("chunk_order_index", 0)
                        payload[r["__id__"]] = rec
                        LOOKUP[r["content"]] = np.asarray(vecs[r["__id__"]], dtype=np.float32)
                    await pvdb[ns].upsert(payload)
                    await pvdb[ns].index_done_callback()  # flush: "embed" (lookup) + executemany
                    LOOKUP.clear()
                    n += len(part)
                    CUR.update(store=f"vdb.{ns}", n=n, total=len(rows))
                    check_deadline()
                times[f"vdb.{ns}"] = round(time.perf_counter() - t, 3)
                counts[f"vdb.{ns}"] = n
    except Deadline:
        partial = True
    t = time.perf_counter()
    for s in pstores:
        await s.finalize()
    times["pg_finalize"] = round(time.perf_counter() - t, 3)
    total = time.perf_counter() - T_START
    print(json.dumps({"dir": wd, "bytes": size, "embedding_dim": dim, "workspace": ws, "model": ARGS.model,
                      "batch": B, "partial": partial, "total_s": round(total, 3),
                      "MBps": round(size / 1e6 / total, 3), "per_store_s": times, "counts": counts,
                      "in_progress": CUR if partial else None}))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())

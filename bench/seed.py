#!/usr/bin/env python
"""Seeds a dedicated PostgreSQL schema with a synthetic social graph for the
load benchmark (bench/run.py), bulk-loaded with COPY.

The graph (deterministic, from a fixed random seed):

* 150,000 users: 130,000 "regular" users (indices 0..129,999; 0, 1 and 2
  are celebrities) and 20,000 "scratch" users the write scenarios use.
* ~1,000,000 follows: each celebrity has 110,000 followers (celebrity 0 also
  has the 8,000 BLOCK scratch users), the rest random with a skew towards
  low indices.
* 100,000 connections (two directed rows each), 20,000 pending requests,
  5,000 blocks, with no edge of any kind across a block and no pending
  request beside a connection.
* user_counters: one row per user, computed in SQL from the edges.

Scratch ranges (only the write scenarios touch them; ``reset`` puts the
schema back as seeded after a run):

* REQ    130,000..139,999  send connection requests (no seeded edges)
* BLOCK  140,000..147,999  follow celebrity 0; block it in the Block scenario
* FOLLOW 148,000..149,999  follow/unfollow (no seeded edges)

``python -m bench.seed [--database-url URL] [--schema bench] [--force]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import time

import psycopg

from harness import libpq_url, schema_url

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SEED_VERSION = 3  # bump when the generated graph changes
N_REGULAR = 130_000
N_USERS = 150_000
CELEBS = (0, 1, 2)
CELEB_FOLLOWERS = 110_000
N_FOLLOWS = 1_000_000  # celebrity + random follows, BLOCK scratch follows on top
N_CONNECTIONS = 100_000
N_REQUESTS = 20_000
N_BLOCKS = 5_000
REQ = range(130_000, 140_000)
BLOCK = range(140_000, 148_000)
FOLLOW = range(148_000, 150_000)
NOW_US = 1_790_000_000_000_000  # fixed "now" so the graph is identical every time
YEAR_US = 365 * 24 * 3600 * 1_000_000

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def uid(i: int) -> str:
    h = hashlib.md5(b"sgbench:%d" % i).hexdigest()
    return f"{h[0:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


USER_IDS = [uid(i) for i in range(N_USERS)]


# ----------------------------------------------------------------- the graph


def generate() -> dict:
    rnd = random.Random(20261122)
    t0 = NOW_US - YEAR_US

    def ts() -> int:
        return t0 + rnd.randrange(YEAR_US)

    follows: dict[int, int] = {}  # key follower*N+followee -> created_us
    for c in CELEBS:
        for f in rnd.sample(range(3, N_REGULAR), CELEB_FOLLOWERS):
            follows[f * N_USERS + c] = ts()
    while len(follows) < N_FOLLOWS:
        a = rnd.randrange(3, N_REGULAR)
        b = 3 + int((N_REGULAR - 3) * rnd.random() ** 2)
        if a != b:
            follows.setdefault(a * N_USERS + b, ts())
    for s in BLOCK:
        follows[s * N_USERS + CELEBS[0]] = ts()

    pairs: set[int] = set()  # unordered pairs lo*N+hi already used by connections/requests

    def pair(a: int, b: int) -> int:
        return min(a, b) * N_USERS + max(a, b)

    connections: dict[int, int] = {}
    while len(connections) < N_CONNECTIONS:
        a, b = rnd.randrange(3, N_REGULAR), rnd.randrange(3, N_REGULAR)
        if a != b and pair(a, b) not in pairs:
            pairs.add(pair(a, b))
            connections[pair(a, b)] = ts()
    requests: list[tuple[int, int, int]] = []
    while len(requests) < N_REQUESTS:
        a, b = rnd.randrange(3, N_REGULAR), rnd.randrange(3, N_REGULAR)
        if a != b and pair(a, b) not in pairs:
            pairs.add(pair(a, b))
            requests.append((a, b, ts()))
    blocks: list[tuple[int, int, int]] = []
    while len(blocks) < N_BLOCKS:
        a, b = rnd.randrange(3, N_REGULAR), rnd.randrange(3, N_REGULAR)
        if (
            a != b
            and pair(a, b) not in pairs
            and a * N_USERS + b not in follows
            and b * N_USERS + a not in follows
        ):
            pairs.add(pair(a, b))
            blocks.append((a, b, ts()))
    return {"follows": follows, "connections": connections, "requests": requests, "blocks": blocks}


def expected_counts() -> dict[str, int]:
    return {
        "users": N_USERS,
        "follows": N_FOLLOWS + len(BLOCK),
        "connections": 2 * N_CONNECTIONS,
        "connection_requests": N_REQUESTS,
        "blocks": N_BLOCKS,
        "user_counters": N_USERS,
    }


# ----------------------------------------------------------------- loading


def _copy(cur, table: str, columns: str, rows) -> None:
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join(map(str, row)))
        buf.write("\n")
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        copy.write(buf.getvalue())


def row_counts(conn, schema: str) -> dict[str, int] | None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema=%s AND table_name='bench_meta'", (schema,)
        )
        if cur.fetchone() is None:
            return None
        cur.execute(f'SELECT value FROM "{schema}".bench_meta WHERE key=%s', ("seed_version",))
        row = cur.fetchone()
        if row is None or row[0] != str(SEED_VERSION):
            return None
        return {t: cur.execute(f'SELECT count(*) FROM "{schema}".{t}').fetchone()[0] for t in expected_counts()}


RECOUNT_SQL = """
TRUNCATE user_counters;
INSERT INTO user_counters (user_id, followers, following, connections, incoming_requests,
                           outgoing_requests, blocked, version)
SELECT u.user_id,
       COALESCE(fr.n, 0), COALESCE(fg.n, 0), COALESCE(c.n, 0),
       COALESCE(ri.n, 0), COALESCE(ro.n, 0), COALESCE(b.n, 0),
       (extract(epoch from clock_timestamp()) * 1000000)::bigint
FROM users u
LEFT JOIN (SELECT followee_id AS id, count(*) n FROM follows GROUP BY 1) fr ON fr.id = u.user_id
LEFT JOIN (SELECT follower_id AS id, count(*) n FROM follows GROUP BY 1) fg ON fg.id = u.user_id
LEFT JOIN (SELECT user_id AS id, count(*) n FROM connections GROUP BY 1) c ON c.id = u.user_id
LEFT JOIN (SELECT recipient_id AS id, count(*) n FROM connection_requests GROUP BY 1) ri ON ri.id = u.user_id
LEFT JOIN (SELECT requester_id AS id, count(*) n FROM connection_requests GROUP BY 1) ro ON ro.id = u.user_id
LEFT JOIN (SELECT blocker_id AS id, count(*) n FROM blocks GROUP BY 1) b ON b.id = u.user_id;
"""


def seed(pg_url: str, schema: str, force: bool = False, log=print) -> dict:
    """Seeds (or reuses) the schema. Returns a summary dict."""
    start = time.monotonic()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        counts = None if force else row_counts(conn, schema)
        if counts is not None:  # seeded by this version: undo the last run's writes, then compare
            reset(conn, schema, log=log)
            counts = row_counts(conn, schema)
        if counts == expected_counts():
            log(f"seed: reusing schema {schema!r} (row counts match seed v{SEED_VERSION})")
            return {"reused": True, "seconds": round(time.monotonic() - start, 1), "rows": counts}
        log(f"seed: (re)creating schema {schema!r}")
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = schema_url(pg_url, schema)
    subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "socialgraph"), "migrate", "--database-url", url],
        check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
    )
    t_gen = time.monotonic()
    g = generate()
    log(f"seed: generated graph in {time.monotonic() - t_gen:.1f}s; loading with COPY")
    ids = USER_IDS
    with psycopg.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute(f'SET search_path TO "{schema}"')
        cur.execute("SET synchronous_commit TO off")
        cur.execute("SET maintenance_work_mem TO '256MB'")
        t0 = NOW_US - YEAR_US
        _copy(cur, "users", "user_id, role, display_name, avatar_url, created_us, updated_us",
              ((ids[i], 1, f"user {i}", "", t0 + i, t0 + i) for i in range(N_USERS)))
        rows = sorted(((ids[k // N_USERS], ids[k % N_USERS], t) for k, t in g["follows"].items()))
        _copy(cur, "follows", "follower_id, followee_id, created_us", rows)
        rows = []
        for k, t in g["connections"].items():
            a, b = ids[k // N_USERS], ids[k % N_USERS]
            rows += [(a, b, t), (b, a, t)]
        rows.sort()
        _copy(cur, "connections", "user_id, other_id, created_us", rows)
        rnd = random.Random(7)
        _copy(cur, "connection_requests",
              "request_id, requester_id, recipient_id, user_low, user_high, message, created_us",
              ((uid(10_000_000 + n), ids[a], ids[b], min(ids[a], ids[b]), max(ids[a], ids[b]), "", t)
               for n, (a, b, t) in enumerate(g["requests"])))
        _copy(cur, "blocks", "blocker_id, blocked_id, block_id, reason, created_us",
              ((ids[a], ids[b], uid(20_000_000 + n), "", t) for n, (a, b, t) in enumerate(g["blocks"])))
        del rnd
        cur.execute(RECOUNT_SQL)
        cur.execute("CREATE TABLE bench_meta (key text PRIMARY KEY, value text NOT NULL)")
        cur.execute("INSERT INTO bench_meta VALUES ('seed_version', %s), ('block_follows', %s)",
                    (str(SEED_VERSION), json.dumps({ids[s]: g["follows"][s * N_USERS + CELEBS[0]] for s in BLOCK})))
        conn.commit()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for t in expected_counts():
            conn.execute(f'VACUUM ANALYZE "{schema}".{t}')
        counts = row_counts(conn, schema)
    if counts != expected_counts():
        raise SystemExit(f"seed: row counts {counts} differ from the expected {expected_counts()}")
    secs = round(time.monotonic() - start, 1)
    log(f"seed: loaded {counts} in {secs}s")
    return {"reused": False, "seconds": secs, "rows": counts}


def reset(conn, schema: str, log=print) -> None:
    """Undoes what the write scenarios did to the scratch users; recounts if
    anything changed."""
    ids = USER_IDS
    req = [ids[i] for i in REQ]
    block = [ids[i] for i in BLOCK]
    follow = [ids[i] for i in FOLLOW]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(f'SET LOCAL search_path TO "{schema}"')
        changed = 0
        cur.execute(
            "DELETE FROM follows WHERE follower_id = ANY(%s) OR followee_id = ANY(%s)",
            (req + follow, req + follow),
        )
        changed += cur.rowcount
        cur.execute(
            "DELETE FROM connection_requests WHERE requester_id = ANY(%s) OR recipient_id = ANY(%s)",
            (req, req),
        )
        changed += cur.rowcount
        cur.execute(
            "DELETE FROM connections WHERE user_id = ANY(%s) OR other_id = ANY(%s)",
            (req + follow + block,) * 2,
        )
        changed += cur.rowcount
        cur.execute(
            "DELETE FROM blocks WHERE blocker_id = ANY(%s) OR blocked_id = ANY(%s)",
            (block + req + follow,) * 2,
        )
        changed += cur.rowcount
        stored = json.loads(cur.execute("SELECT value FROM bench_meta WHERE key='block_follows'").fetchone()[0])
        cur.execute(
            "INSERT INTO follows (follower_id, followee_id, created_us) "
            "SELECT f, %s, t FROM unnest(%s::text[], %s::bigint[]) AS x(f, t) ON CONFLICT DO NOTHING",
            (ids[CELEBS[0]], list(stored), list(stored.values())),
        )
        changed += cur.rowcount
        # Follows between the BLOCK users and anyone but celebrity 0 never existed.
        cur.execute("DELETE FROM follows WHERE (follower_id = ANY(%s) AND followee_id <> %s) OR followee_id = ANY(%s)",
                    (block, ids[CELEBS[0]], block))
        changed += cur.rowcount
        if changed:
            cur.execute(RECOUNT_SQL)
            log(f"seed: reset {changed} rows changed by earlier write scenarios; counters recomputed")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG),
                   help="libpq URL of the PostgreSQL database (a schema is created in it)")
    p.add_argument("--schema", default="bench")
    p.add_argument("--force", action="store_true", help="reseed even when the schema looks complete")
    a = p.parse_args()
    print(json.dumps(seed(libpq_url(a.database_url), a.schema, a.force)))


if __name__ == "__main__":
    main()

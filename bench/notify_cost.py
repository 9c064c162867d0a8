#!/usr/bin/env python
"""What a PostgreSQL LISTEN/NOTIFY feed would cost the writes
(``python -m bench.notify_cost``; never part of ``make test``).

A feed that keeps several processes' caches coherent without Redis must be
sent inside the writing transaction (``pg_notify``), so a writer that dies
after COMMIT cannot skip it. This drives short write transactions shaped
like ours (lock one user row, bump its counters, COMMIT) from several
threads, with and without a ``pg_notify`` naming the user in each, while two
connections LISTEN (two server processes), and prints transactions per
second and latency. The schema is private and dropped afterwards.

    python -m bench.notify_cost [--threads N] [--seconds S]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid

import psycopg

from harness import POSTGRES_DSN, postgres_schema, schema_of

CHANNEL = "sg_bench_counts"


def run(schema: str, threads: int, seconds: float, notify: bool) -> tuple[float, float, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def writer(i: int) -> None:
        mine = []
        with psycopg.connect(POSTGRES_DSN) as conn:
            conn.execute(f"SET search_path = {schema}")
            conn.commit()
            while time.monotonic() < stop:
                started = time.monotonic()
                conn.execute("SELECT n FROM counters WHERE id = %s FOR UPDATE", (i,))
                conn.execute("UPDATE counters SET n = n + 1, v = v + 1 WHERE id = %s", (i,))
                if notify:
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{i} {uuid.uuid4()}"))
                conn.commit()
                mine.append(time.monotonic() - started)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    latencies.sort()
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    return len(latencies) / seconds, statistics.median(latencies) * 1000, p99 * 1000


def listen(done: threading.Event, heard: list[int]) -> None:
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        while not done.is_set():
            for _ in conn.notifies(timeout=0.2):
                heard[0] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    with postgres_schema(POSTGRES_DSN, "notify") as url, psycopg.connect(POSTGRES_DSN, autocommit=True) as admin:
        schema = schema_of(url)
        admin.execute(f"CREATE TABLE {schema}.counters (id int PRIMARY KEY, n bigint NOT NULL, v bigint NOT NULL)")
        admin.execute(f"INSERT INTO {schema}.counters SELECT g, 0, 0 FROM generate_series(0, {args.threads}) g")
        done = threading.Event()
        heard = [0]
        listeners = [threading.Thread(target=listen, args=(done, heard)) for _ in range(2)]
        for thread in listeners:
            thread.start()
        time.sleep(0.5)
        for notify in (False, True, False, True):
            tps, p50, p99 = run(schema, args.threads, args.seconds, notify)
            label = "with pg_notify" if notify else "without"
            print(f"{label:<16} {args.threads} threads: {tps:8.0f} tx/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
        done.set()
        for thread in listeners:
            thread.join()
        print(f"notifications heard by the two listeners: {heard[0]}")


if __name__ == "__main__":
    main()

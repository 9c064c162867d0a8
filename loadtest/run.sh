#!/bin/sh
# ghz runs of the main scenarios against a server on 127.0.0.1:50051 (reflection, no .proto needed).
#
#   python -m bench.seed                      # the bench graph in schema "bench" (fixed user ids)
#   socialgraph serve --listen 127.0.0.1:50051 \
#     --database-url 'postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dbench' \
#     --redis-url redis://127.0.0.1:6379/13 --rate-limits 1000000000/1h,1000000000/24h --workers 2 &
#   sh loadtest/run.sh                         # or: sh loadtest/run.sh get_relationship
#
# 988801f1-... and 01f77cea-... are celebrities of the bench graph (110k+ followers);
# {{newUUID}} makes a fresh user id for every request. Each config's "host"
# can be overridden on the command line: ghz --config FILE 127.0.0.1:PORT.
# ghz is $GHZ, else the one `make ghz` installs (.tools/bin), else ghz on PATH.
set -e
cd "$(dirname "$0")"
if [ -z "${GHZ:-}" ]; then
    if [ -x ../.tools/bin/ghz ]; then GHZ=../.tools/bin/ghz; else GHZ=ghz; fi
fi
for name in ${*:-get_relationship get_counts can_interact follow send_connection_request list_followers}; do
    echo "== $name"
    "$GHZ" --config "$name.json"
done

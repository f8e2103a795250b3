#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1, for tests, benchmarks and trying the hub on PostgreSQL.
#   deploy/local-postgres.sh start DIR [PORT]   initdb (if needed) and start; prints the database URL
#   deploy/local-postgres.sh stop DIR           stop it
# As root the server runs as the 'postgres' user (PostgreSQL refuses to run as root).
set -euo pipefail
cmd=${1:?usage: local-postgres.sh start|stop DIR [PORT]}
dir=${2:?usage: local-postgres.sh start|stop DIR [PORT]}
port=${3:-55432}

bin=""
for candidate in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent)")" /usr/lib/postgresql/*/bin; do
  if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then bin=$candidate; break; fi
done
if [ -z "$bin" ]; then
  echo "initdb not found: install PostgreSQL (Debian: apt-get install -y postgresql)" >&2
  exit 3
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
      id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
      chown postgres "$dir"
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    # Tests trade durability for speed. PG_DURABLE=1 keeps PostgreSQL durable (fsync, synchronous commit, full
    # page writes) and sizes it as deploy/POSTGRES.md recommends for a hub: a buffer cache that holds the working
    # set (PG_SHARED_BUFFERS, default 2GB) and checkpoints spaced out, with compressed WAL.
    opts="-h 127.0.0.1 -p $port -k $dir -c max_connections=200"
    if [ "${PG_DURABLE:-0}" = 1 ]; then
      opts="$opts -c shared_buffers=${PG_SHARED_BUFFERS:-2GB} -c max_wal_size=8GB -c checkpoint_timeout=15min"
      opts="$opts -c wal_compression=lz4 -c effective_cache_size=8GB"
    else
      opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -o "$opts" \
      start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  *)
    echo "usage: local-postgres.sh start|stop DIR [PORT]" >&2; exit 2 ;;
esac

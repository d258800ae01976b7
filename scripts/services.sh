#!/usr/bin/env bash
# Starts the real services the test suite runs against, on loopback, in a private directory:
# a PostgreSQL cluster and an S3-compatible server (moto). Source it; it exports
# SIGILLUM_TEST_DATABASE_URL, SIGILLUM_TEST_S3_ENDPOINT/_BUCKET and AWS credentials for the
# S3 server, and registers a trap that stops both.

SVC_DIR=$(mktemp -d /tmp/sigillum-test-XXXXXX)
chmod 755 "$SVC_DIR"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

stop_services() {
  [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2>/dev/null || true
  if [ -n "${PG_DATA:-}" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
    $PG_AS "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$SVC_DIR"
}
trap stop_services EXIT

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
PG_DATA="$SVC_DIR/pg"
PG_PORT=$(free_port)
mkdir -p "$PG_DATA"
PG_AS=""
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$PG_DATA"
  PG_AS="runuser -u postgres --"
fi
$PG_AS "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres --no-sync >/dev/null
$PG_AS "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DATA -c max_connections=300 -c fsync=on" start >/dev/null
export SIGILLUM_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
echo "==> PostgreSQL on 127.0.0.1:$PG_PORT"

S3_PORT=$(free_port)
export AWS_ACCESS_KEY_ID=sigillum-test AWS_SECRET_ACCESS_KEY=sigillum-test-secret AWS_DEFAULT_REGION=eu-central-2
python3 -m moto.server -H 127.0.0.1 -p "$S3_PORT" >"$SVC_DIR/moto.log" 2>&1 &
MOTO_PID=$!
export SIGILLUM_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" SIGILLUM_TEST_S3_BUCKET=sigillum-test
for _ in $(seq 1 100); do
  python3 - <<PY >/dev/null 2>&1 && break
import boto3
s3 = boto3.client("s3", endpoint_url="$SIGILLUM_TEST_S3_ENDPOINT", region_name="eu-central-2")
s3.create_bucket(Bucket="sigillum-test", CreateBucketConfiguration={"LocationConstraint": "eu-central-2"})
PY
  sleep 0.2
done
if ! python3 -c "import boto3; boto3.client('s3', endpoint_url='$SIGILLUM_TEST_S3_ENDPOINT', region_name='eu-central-2').head_bucket(Bucket='sigillum-test')" >/dev/null 2>&1; then
  echo "!! the S3 test server did not come up:"; cat "$SVC_DIR/moto.log"; exit 1
fi
echo "==> S3 (moto) on $SIGILLUM_TEST_S3_ENDPOINT"

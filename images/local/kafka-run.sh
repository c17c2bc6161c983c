#!/bin/sh
# Starts one Kafka node the way the official apache/kafka image does, from its environment:
#   KAFKA_FOO_BAR=value   -> foo.bar=value in server.properties (`___` -> `-`, `__` -> `_`);
#                            KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_OPTS and
#                            KAFKA_VERSION are JVM or image settings, not broker ones
#   CLUSTER_ID            -> formats the storage (log dirs) on first start
# then execs the broker in the foreground (PID 1's child under --init; SIGTERM stops it cleanly).
set -eu

config=/opt/kafka/config/run/server.properties
: >"$config"
# One variable per line; values that span lines are not supported (no broker setting needs one).
env | sort | while IFS= read -r line; do
    name=${line%%=*}
    value=${line#*=}
    case $name in
        KAFKA_HEAP_OPTS | KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_OPTS | KAFKA_VERSION) continue ;;
        KAFKA_?*) ;;
        *) continue ;;
    esac
    key=$(printf '%s\n' "${name#KAFKA_}" | tr 'A-Z' 'a-z' |
        sed -e 's/___/-/g' -e 's/__/\x01/g' -e 's/_/./g' -e 's/\x01/_/g')
    printf '%s=%s\n' "$key" "$value" >>"$config"
done

classpath='/opt/kafka/libs/*'
log4j=-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties
log_dirs=$(sed -n 's/^log\.dirs=//p' "$config")
if [ -n "${CLUSTER_ID:-}" ] && [ ! -f "${log_dirs%%,*}/meta.properties" ]; then
    # shellcheck disable=SC2086  # word splitting of the JVM options is intended
    java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 $log4j -cp "$classpath" \
        kafka.tools.StorageTool format --cluster-id "$CLUSTER_ID" --config "$config"
fi
# shellcheck disable=SC2086
exec java ${KAFKA_HEAP_OPTS:-} ${KAFKA_JVM_PERFORMANCE_OPTS:-} ${KAFKA_OPTS:-} $log4j \
    -cp "$classpath" kafka.Kafka "$config"

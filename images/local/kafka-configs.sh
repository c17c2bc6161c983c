#!/bin/sh
# kafka-configs.sh of the Kafka distribution, from the broker's jars: the healthcheck's probe.
# shellcheck disable=SC2086  # word splitting of the JVM options is intended
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties \
    -cp '/opt/kafka/libs/*' kafka.admin.ConfigCommand "$@"

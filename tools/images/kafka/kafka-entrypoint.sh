#!/bin/sh
# Starts the single-node KRaft broker of the ticklake-kafka image.
#   KAFKA_CLUSTER_ID            required on first start: formats the empty log
#                               directory with it (22 characters of URL-safe
#                               base64, as ticklake.devstack.kafka.cluster_id()
#                               makes them); later starts keep the formatted one
#   KAFKA_ADVERTISED_LISTENERS  what clients are told to connect to
#                               (default PLAINTEXT://<hostname>:9092; in a pod,
#                               the Service's DNS name)
#   KAFKA_NUM_PARTITIONS        default partitions of auto-created topics (1)
#   KAFKA_HEAP                  Java heap (512m)
set -eu
data=/var/lib/kafka/data
config=/tmp/server.properties
cp /opt/kafka/config/server.properties "$config"
printf 'advertised.listeners=%s\n' "${KAFKA_ADVERTISED_LISTENERS:-PLAINTEXT://$(hostname):9092}" >> "$config"
printf 'num.partitions=%s\n' "${KAFKA_NUM_PARTITIONS:-1}" >> "$config"
if [ ! -f "$data/meta.properties" ]; then
    if [ -z "${KAFKA_CLUSTER_ID:-}" ]; then
        echo "kafka-entrypoint: $data is not formatted; set KAFKA_CLUSTER_ID (22 characters of URL-safe base64)" >&2
        exit 2
    fi
    java -Xmx256m @/opt/kafka/config/jvm.args -cp '/opt/kafka/libs/*' kafka.tools.StorageTool \
        format --standalone --cluster-id="$KAFKA_CLUSTER_ID" -c "$config"
fi
heap="${KAFKA_HEAP:-512m}"
exec java "-Xmx$heap" "-Xms$heap" @/opt/kafka/config/jvm.args -cp '/opt/kafka/libs/*' kafka.Kafka "$config"

"""ticklake operator: keeps ingest replicas matched to the ticks topic's partitions and lag.

Layout: ``decision`` (pure scaling rules), ``partitions`` (murmur2 key mapping),
``lag`` (offset maths + reading offsets from Kafka), ``kube`` (the Kubernetes
calls), ``reconcile`` (gather -> decide -> apply), ``handlers`` (kopf wiring),
``cli`` (``ticklake-operator``).
"""

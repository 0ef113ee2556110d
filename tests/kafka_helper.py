"""Talks to a Kafka-protocol broker for tests/kafka.rs and the Kafka benchmark, with
confluent-kafka (librdkafka), as a producing service would.

  kafka_helper.py BROKERS create TOPIC PARTITIONS
  kafka_helper.py BROKERS produce TOPIC < messages   (one JSON per line:
      {"partition": 0, "key": "k" or null, "value": "text"}; prints how many were acknowledged)
  kafka_helper.py BROKERS bench TOPIC PARTITIONS KIND N PER_MESSAGE   (KIND: ndjson | telnet)
"""
import json
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def create(brokers, topic, partitions):
    admin = AdminClient({"bootstrap.servers": brokers})
    futures = admin.create_topics([NewTopic(topic, num_partitions=int(partitions), replication_factor=1)])
    for f in futures.values():
        f.result(timeout=30)
    # Wait until the broker reports every partition.
    deadline = time.time() + 30
    while time.time() < deadline:
        md = admin.list_topics(topic, timeout=5)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == int(partitions):
            return
        time.sleep(0.1)
    raise SystemExit(f"topic {topic} did not show {partitions} partitions")


def producer(brokers):
    return Producer({"bootstrap.servers": brokers, "linger.ms": 5, "acks": "all",
                     "queue.buffering.max.messages": 1000000})


def produce(brokers, topic):
    p = producer(brokers)
    acked = [0]
    failed = []

    def done(err, _msg):
        if err is None:
            acked[0] += 1
        else:
            failed.append(str(err))

    for line in sys.stdin:
        if not line.strip():
            continue
        m = json.loads(line)
        key = m.get("key")
        p.produce(topic, value=m["value"].encode(), key=key.encode() if key is not None else None,
                  partition=m.get("partition", 0), on_delivery=done)
        p.poll(0)
    p.flush(30)
    if failed:
        raise SystemExit(f"produce failed: {failed[:3]}")
    print(acked[0])


def bench(brokers, topic, partitions, kind, n, per_message):
    """N points in messages of PER_MESSAGE points each, spread over the partitions."""
    partitions, n, per = int(partitions), int(n), int(per_message)
    p = producer(brokers)
    base = 1_700_000_000_000
    i = 0
    m = 0
    while i < n:
        rows = []
        for j in range(min(per, n - i)):
            k = i + j
            host = f"h{k % 1000}"
            if kind == "ndjson":
                rows.append(f'{{"time":{base + k},"host":"{host}","cpu":{k % 100}.5}}')
            else:
                rows.append(f"put bench.cpu {base + k} {k % 100}.5 host={host}")
        i += len(rows)
        while True:
            try:
                p.produce(topic, value="\n".join(rows).encode(), partition=m % partitions)
                break
            except BufferError:
                p.poll(0.05)
        m += 1
        p.poll(0)
    p.flush(120)
    print(m)


def main():
    brokers, cmd, *rest = sys.argv[1:]
    {"create": create, "produce": produce, "bench": bench}[cmd](brokers, *rest)


if __name__ == "__main__":
    main()

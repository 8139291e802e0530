"""An outside producer and receipt reader for Herald, on confluent-kafka
(librdkafka), so the Kafka contract is checked with a client that is not
Herald's own.

usage: outside_client.py BROKERS TOPIC_PREFIX COUNT USERS TIMEOUT_SECONDS

Publishes COUNT notification events to <prefix>events, prints
{"published": COUNT}, then reads <prefix>receipts with a group of its own
until it has seen a `sent` receipt for every one of them (or the timeout),
and prints {"sent": n, "foreign": m}.
"""
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer


def main():
    brokers, prefix, count, users, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    ids = set()
    for i in range(count):
        event_id = str(uuid.uuid4())
        user = f"u{i % users}"
        event = {
            "event_id": event_id,
            "template": "welcome",
            "recipients": [user],
            "channels": ["email"],
            "params": {"name": f"outside {i}", "app_name": "Acme"},
        }
        producer.produce(prefix + "events", key=user, value=json.dumps(event))
        ids.add(event_id)
        producer.poll(0)
    if producer.flush(30) != 0:
        sys.exit("events not delivered to the broker")
    print(json.dumps({"published": count}), flush=True)

    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "outside-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
    })
    consumer.subscribe([prefix + "receipts"])
    sent, foreign = set(), set()
    deadline = time.time() + timeout
    while time.time() < deadline and len(sent) < count:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        receipt = json.loads(message.value())
        for field in ("schema_version", "delivery_id", "notification_id", "user_id", "channel", "state", "at"):
            if field not in receipt:
                sys.exit(f"receipt without {field}: {receipt}")
        if receipt["state"] == "sent":
            (sent if receipt["notification_id"] in ids else foreign).add(receipt["notification_id"])
    consumer.close()
    print(json.dumps({"sent": len(sent), "foreign": len(foreign)}), flush=True)


if __name__ == "__main__":
    main()

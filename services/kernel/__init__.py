"""The shared kernel every service uses: the wire events and their schemas, the topics, the reference
model, time, errors, settings, logs and the message-bus declarations. No Kafka, HTTP or Faust here."""

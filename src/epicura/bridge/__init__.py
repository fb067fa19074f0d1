"""The MQTT side: consumer, publisher, topic routing and broker credential management."""

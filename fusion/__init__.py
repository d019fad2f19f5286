"""Wiring: config, pipeline, command line, MQTT, logs, simulation."""

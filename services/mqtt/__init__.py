"""The MQTT bridge: verified door events to an MQTT broker, with Home Assistant discovery."""

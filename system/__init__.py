"""The system under test: the flash-sale API, its purchase strategies, Redis schema, configs and stack platforms."""

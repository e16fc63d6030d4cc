"""Operations: telemetry, monitoring, live status, logs, memory settings, the Ray pool."""

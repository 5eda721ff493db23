"""The operators' console: doors, people, live events, the log, calibration."""

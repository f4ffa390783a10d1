"""mww: train streaming int8 wake-word models for ESPHome's micro_wake_word."""

__version__ = "0.1.0"

"""The Volt X training phases for voltx."""

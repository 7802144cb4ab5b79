"""What every process runs on, below the services and above the kernel's vocabulary: its settings (from the
environment), its logs (JSON, redacted, with correlation ids) and reference data read from its files."""

"""Operations: the CLI, the embedded emulator, provisioning, the day generator."""

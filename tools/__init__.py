"""Developer tooling: the local Azurite emulator and the `make run` supervisor."""

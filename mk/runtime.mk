# libember (placeholder until the runtime lands)
.PHONY: lib
lib:

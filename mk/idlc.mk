# idlc (placeholder until the compiler lands)
.PHONY: idlc
idlc:

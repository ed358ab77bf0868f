# ember's wire protocol spoken from its documentation alone (tests/wire,
# docs/protocol.md).
#
#   make test-wire   tests/wire/test_wire.py, a node and a root written in
#                    plain Python 3 from docs/protocol.md and docs/idl.md,
#                    against a real ember root and node (tests/wire/peer.c:
#                    generated/ for idl/db.idl and idl/game.idl, and
#                    tests/idl/shapes.idl through this idlc), then
#                    tests/wire/test_attack.py, what the page calls a
#                    violation, malformed or over a limit, from a raw socket

WIRE_GEN    := $(B)/gen/wire
WIRE_OBJ    := $(B)/obj/tests/wire
WIRE_PEER   := $(B)/bin/wire-peer
WIRE_PYTHON ?= /usr/bin/python3

$(WIRE_GEN)/shapes.c $(WIRE_GEN)/shapes.h $(WIRE_GEN)/common.c $(WIRE_GEN)/common.h &: \
		tests/idl/shapes.idl tests/idl/common.idl $(IDLC)
	@mkdir -p $(WIRE_GEN)
	$(IDLC) -o $(WIRE_GEN) tests/idl/shapes.idl tests/idl/common.idl

$(WIRE_OBJ)/gen-%.o: generated/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(EMBER_INC) -Igenerated -c $< -o $@

$(WIRE_OBJ)/wgen-%.o: $(WIRE_GEN)/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(EMBER_INC) -c $< -o $@

$(WIRE_OBJ)/peer.o: tests/wire/peer.c $(WIRE_GEN)/shapes.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(EMBER_INC) $(EVENT_CFLAGS) -Igenerated -I$(WIRE_GEN) -c $< -o $@

$(WIRE_PEER): $(WIRE_OBJ)/peer.o $(WIRE_OBJ)/gen-db.o $(WIRE_OBJ)/gen-game.o \
		$(WIRE_OBJ)/gen-client.o $(WIRE_OBJ)/wgen-shapes.o $(WIRE_OBJ)/wgen-common.o \
		$(LIBEMBER_A)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $^ $(RT_LIBS)

.PHONY: test-wire
test-wire: $(WIRE_PEER)
	$(WIRE_PYTHON) tests/wire/test_wire.py $(WIRE_PEER)
	$(WIRE_PYTHON) tests/wire/test_attack.py $(WIRE_PEER)
TEST_TARGETS += test-wire

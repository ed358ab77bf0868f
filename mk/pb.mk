# Twisted Perspective Broker peers against ember (tests/pb, docs/protocol-pb.md).
#
#   make test-pb   tests/pb/test_pb.c with the project's Twisted peers
#                  (tests/pb/peer.py, Debian's python3-twisted)
#
# tests/pb/pbtest.idl goes through this idlc; the generated code is compiled
# with the suite's flags.

PB_GEN    := $(B)/gen/pb
PB_BIN    := $(B)/bin/test-pb
PB_PYTHON ?= /usr/bin/python3

$(PB_GEN)/pbtest.c $(PB_GEN)/pbtest.h &: tests/pb/pbtest.idl $(IDLC)
	@mkdir -p $(PB_GEN)
	$(IDLC) -o $(PB_GEN) tests/pb/pbtest.idl

$(B)/obj/tests/pb/pbtest.o: $(PB_GEN)/pbtest.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(EMBER_INC) -c $< -o $@

$(B)/obj/tests/pb/test_pb.o: tests/pb/test_pb.c $(PB_GEN)/pbtest.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(EMBER_INC) $(EVENT_CFLAGS) -Iruntime/src -I$(PB_GEN) -c $< -o $@

$(PB_BIN): $(B)/obj/tests/pb/test_pb.o $(B)/obj/tests/pb/pbtest.o $(LIBEMBER_A)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $^ $(RT_LIBS)

.PHONY: test-pb
test-pb: $(PB_BIN)
	PYTHON=$(PB_PYTHON) $(RUNNER) $(PB_BIN) tests/pb/peer.py
TEST_TARGETS += test-pb

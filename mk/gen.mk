# idlc's C generators: golden files, warning-free compiles, codec suites.
#
#   make test-gen        runs idlc on tests/idl/*.idl; compares the golden
#                        modules byte for byte with tests/golden; compiles
#                        every generated file with gcc AND clang at -Werror;
#                        runs the round-trip, evolution, end-to-end,
#                        service-identity and third-party-ref suites
#   make golden-update   rewrites tests/golden from the current idlc
#
# Generated files go to $(B)/gen/tests; nothing is written into the tree
# except by golden-update.

GEN_T       := $(B)/gen/tests
GEN_NAMES   := $(patsubst tests/idl/%.idl,%,$(wildcard tests/idl/*.idl))
GEN_GOLDEN  := common shapes game
GEN_GCC     ?= gcc
GEN_CLANG   ?= clang
GEN_WARN    := -std=c11 -Wall -Wextra -Wpedantic -Werror -Wshadow
GEN_CFLAGS   = $(GEN_WARN) $(OPT) $(SAN) -MMD -MP $(EMBER_INC) -I$(GEN_T) $(CFLAGS)
GEN_TCFLAGS  = $(CFLAGS_ALL) $(EMBER_INC) -I$(GEN_T) $(EVENT_CFLAGS)
GEN_LIBS     = $(LIBEMBER_A) $(RT_LIBS) -lcunit

GEN_SRCS    := $(foreach n,$(GEN_NAMES),$(GEN_T)/$(n).c $(GEN_T)/$(n).h)
GEN_OBJS    := $(foreach n,$(GEN_NAMES),$(GEN_T)/$(n).gcc.o $(GEN_T)/$(n).clang.o)

.PHONY: test-gen golden-update gen-golden-check
.SECONDARY: $(GEN_SRCS)

# One idlc run writes both NAME.h and NAME.c (a grouped pattern rule).
$(GEN_T)/%.c $(GEN_T)/%.h: tests/idl/%.idl $(IDLC)
	@mkdir -p $(@D)
	$(IDLC) -I tests/idl -o $(GEN_T) $<

# Every generated file, with both compilers.
$(GEN_T)/%.gcc.o: $(GEN_T)/%.c $(GEN_T)/%.h
	$(GEN_GCC) $(GEN_CFLAGS) -c $< -o $@
$(GEN_T)/%.clang.o: $(GEN_T)/%.c $(GEN_T)/%.h
	@command -v $(GEN_CLANG) >/dev/null || { echo "test-gen: $(GEN_CLANG) is required (make deps)"; exit 1; }
	$(GEN_CLANG) $(GEN_CFLAGS) -c $< -o $@

# Imports: a module's header includes its imports' headers.
$(GEN_T)/shapes.gcc.o $(GEN_T)/shapes.clang.o $(GEN_T)/roundtrip.o \
$(GEN_T)/e2e.o: $(GEN_T)/common.h

# ---- suites ----
$(GEN_T)/%.o: tests/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(GEN_TCFLAGS) -c $< -o $@

$(GEN_T)/roundtrip.o: $(GEN_T)/shapes.h
$(GEN_T)/evolve.o: $(GEN_T)/evolve_v1.h $(GEN_T)/evolve_v2.h
$(GEN_T)/e2e.o: $(GEN_T)/shapes.h

$(B)/bin/test-gen-roundtrip: $(GEN_T)/roundtrip.o $(GEN_T)/shapes.gcc.o $(GEN_T)/common.gcc.o $(LIBEMBER_A)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $(filter %.o,$^) $(GEN_LIBS)

$(B)/bin/test-gen-evolve: $(GEN_T)/evolve.o $(GEN_T)/evolve_v1.gcc.o $(GEN_T)/evolve_v2.gcc.o $(LIBEMBER_A)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $(filter %.o,$^) $(GEN_LIBS)

$(B)/bin/test-gen-e2e: $(GEN_T)/e2e.o $(GEN_T)/shapes.gcc.o $(GEN_T)/common.gcc.o $(LIBEMBER_A)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $(filter %.o,$^) $(GEN_LIBS)

$(GEN_T)/services.o: $(GEN_T)/mod_a.h $(GEN_T)/mod_b.h

$(B)/bin/test-gen-services: $(GEN_T)/services.o $(GEN_T)/mod_a.gcc.o $(GEN_T)/mod_b.gcc.o $(LIBEMBER_A)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $(filter %.o,$^) $(GEN_LIBS)

# thirdparty.c reads a ref's count (ref-internal.h): the releases reaching
# the owner.
$(GEN_T)/thirdparty.o: $(GEN_T)/mod_a.h $(GEN_T)/mod_b.h
$(GEN_T)/thirdparty.o: GEN_TCFLAGS += -Iruntime/src
# roundtrip.c checks values as a proxy does (ref-internal.h).
$(GEN_T)/roundtrip.o: GEN_TCFLAGS += -Iruntime/src

$(B)/bin/test-gen-thirdparty: $(GEN_T)/thirdparty.o $(GEN_T)/mod_a.gcc.o $(GEN_T)/mod_b.gcc.o $(LIBEMBER_A)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $(filter %.o,$^) $(GEN_LIBS)

# chaos.c reads a connection's export tables (ref-internal.h).
$(GEN_T)/chaos.o: $(GEN_T)/chaos.h
$(GEN_T)/chaos.o: GEN_TCFLAGS += -Iruntime/src

$(B)/bin/test-gen-chaos: $(GEN_T)/chaos.o $(GEN_T)/chaos.gcc.o $(LIBEMBER_A)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $(filter %.o,$^) $(GEN_LIBS)

GEN_TESTS := $(B)/bin/test-gen-roundtrip $(B)/bin/test-gen-evolve \
             $(B)/bin/test-gen-e2e $(B)/bin/test-gen-services \
             $(B)/bin/test-gen-thirdparty $(B)/bin/test-gen-chaos

gen-golden-check: $(foreach n,$(GEN_GOLDEN),$(GEN_T)/$(n).c $(GEN_T)/$(n).h)
	@for f in $(foreach n,$(GEN_GOLDEN),$(n).h $(n).c); do \
	    cmp -s tests/golden/$$f $(GEN_T)/$$f && continue; \
	    echo "test-gen: $(GEN_T)/$$f differs from tests/golden/$$f" \
	         "(run 'make golden-update' if the change is intended):"; \
	    diff -u tests/golden/$$f $(GEN_T)/$$f | head -60; \
	    exit 1; \
	done
	@echo "test-gen: golden files match"

golden-update: $(foreach n,$(GEN_GOLDEN),$(GEN_T)/$(n).c $(GEN_T)/$(n).h)
	@mkdir -p tests/golden
	cp $^ tests/golden/

test-gen: gen-golden-check $(GEN_OBJS) $(GEN_TESTS)
	@for t in $(GEN_TESTS); do echo "== $$t"; $(RUNNER) $$t || exit 1; done

TEST_TARGETS += test-gen

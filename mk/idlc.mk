# idlc — the IDL compiler.
#
# Every idlc/*.c is part of the compiler (front end and generators alike);
# flex and bison write their output under $(B)/gen/idlc and everything is
# compiled with the project's warning flags, generated code included.

BISON ?= bison
FLEX  ?= flex

IDLC_GEN   := $(B)/gen/idlc
IDLC_OBJ   := $(B)/obj/idlc
IDLC_SRCS  := $(wildcard idlc/*.c)
IDLC_OBJS  := $(patsubst idlc/%.c,$(IDLC_OBJ)/%.o,$(IDLC_SRCS)) \
              $(IDLC_OBJ)/parser.o $(IDLC_OBJ)/lexer.o
IDLC_CPPFLAGS := -Iidlc -I$(IDLC_GEN) -DIDLC_VERSION='"$(EMBER_VERSION)"'

.PHONY: idlc test-idlc
idlc: $(IDLC)

$(IDLC): $(IDLC_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -o $@ $(IDLC_OBJS) $(LDFLAGS)

$(IDLC_GEN)/parser.c: idlc/parser.y
	@mkdir -p $(@D)
	$(BISON) -Wall -Werror --header=$(IDLC_GEN)/parser.h -o $@ $<
$(IDLC_GEN)/parser.h: $(IDLC_GEN)/parser.c ;

$(IDLC_GEN)/lexer.c: idlc/lexer.l
	@mkdir -p $(@D)
	$(FLEX) -o $@ $<

# parser.h must exist before anything that includes it compiles; after the
# first build the -MMD dependency files take over.
$(IDLC_OBJ)/%.o: idlc/%.c | $(IDLC_GEN)/parser.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(IDLC_CPPFLAGS) -c -o $@ $<

$(IDLC_OBJ)/%.o: $(IDLC_GEN)/%.c $(IDLC_GEN)/parser.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(IDLC_CPPFLAGS) -c -o $@ $<

# idlc_check_buffer(), the fuzzing entry point, tested in-process: the
# front end without main.o.
IDLC_LIB_OBJS := $(filter-out $(IDLC_OBJ)/main.o,$(IDLC_OBJS))
IDLC_CHECK_BUFFER := $(B)/bin/idlc-check-buffer-test

$(IDLC_CHECK_BUFFER): tests/idlc/check_buffer.c $(IDLC_LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(IDLC_CPPFLAGS) -o $@ $< $(IDLC_LIB_OBJS) $(LDFLAGS)

TEST_TARGETS += test-idlc
test-idlc: $(IDLC) $(IDLC_CHECK_BUFFER)
	@$(RUNNER) $(IDLC_CHECK_BUFFER)
	@sh tests/idlc/run.sh $(IDLC)

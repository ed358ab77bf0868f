# examples/hello built in tree (the tutorial's code must not rot).
HELLO_OUT := $(B)/examples/hello

$(HELLO_OUT)/gen/hello.c: examples/hello/hello.idl $(IDLC)
	@mkdir -p $(@D)
	$(IDLC) -o $(@D) $<

$(HELLO_OUT)/hello: examples/hello/main.c $(HELLO_OUT)/gen/hello.c $(LIBEMBER_A)
	$(CC) $(CFLAGS_ALL) $(EMBER_INC) -I$(HELLO_OUT)/gen $(EVENT_CFLAGS) \
	    examples/hello/main.c $(HELLO_OUT)/gen/hello.c -o $@ $(LIBEMBER_A) $(RT_LIBS)

.PHONY: test-hello
test-hello: $(HELLO_OUT)/hello
	$(RUNNER) $(HELLO_OUT)/hello
TEST_TARGETS += test-hello

# Every C snippet of README.md, docs/runtime.md and docs/generated-code.md
# compiles as shown, with gcc and clang at -Werror.
.PHONY: test-doc-snippets
test-doc-snippets: $(IDLC)
	python3 scripts/check-doc-snippets.py $(B) $(IDLC) $(GEN_GCC) $(GEN_CLANG)
TEST_TARGETS += test-doc-snippets

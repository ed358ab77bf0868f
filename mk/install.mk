# make install PREFIX=... DESTDIR=...
# Installs idlc, libember (static and shared, with a soname), the public
# headers, idlc's man page and ember.pc for pkg-config.

LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
PCDIR      ?= $(LIBDIR)/pkgconfig

.PHONY: install test-install
$(B)/ember.pc: mk/ember.pc.in mk/install.mk
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(EMBER_VERSION)|g' $< > $@

install: all $(B)/ember.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/ember \
	           $(DESTDIR)$(PCDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(IDLC) $(DESTDIR)$(BINDIR)/idlc
	install -m 644 $(LIBEMBER_A) $(DESTDIR)$(LIBDIR)/libember.a
	install -m 755 $(LIBEMBER_SO) $(DESTDIR)$(LIBDIR)/libember.so.$(EMBER_VERSION)
	ln -sf libember.so.$(EMBER_VERSION) $(DESTDIR)$(LIBDIR)/libember.so.$(EMBER_SOVER)
	ln -sf libember.so.$(EMBER_SOVER) $(DESTDIR)$(LIBDIR)/libember.so
	install -m 644 runtime/include/ember/*.h $(DESTDIR)$(INCLUDEDIR)/ember/
	install -m 644 $(B)/ember.pc $(DESTDIR)$(PCDIR)/ember.pc
	if [ -f docs/idlc.1 ]; then install -m 644 docs/idlc.1 $(DESTDIR)$(MANDIR)/man1/idlc.1; fi

# Installs into a temporary prefix and builds examples/hello out of tree
# with nothing but the installed idlc and pkg-config.
test-install: all
	@B=$(B) scripts/test-install.sh
TEST_TARGETS += test-install

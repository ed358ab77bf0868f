# make install PREFIX=... DESTDIR=...
# Installs idlc, libember (static and shared, with a soname), the public
# headers, idlc's man page and ember.pc for pkg-config.
# make uninstall PREFIX=... DESTDIR=...
# Removes exactly those files, and include/ember/ once it is empty; the
# shared directories (bin/, lib/, ...) stay, as other software uses them.

LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
PCDIR      ?= $(LIBDIR)/pkgconfig

.PHONY: install uninstall test-install FORCE
FORCE:

# ember.pc names the final directories, so it is rebuilt whenever one of
# them differs from the last build's: $(B)/ember.pc.dirs holds them and is
# rewritten only when they change.
PC_DIRS := prefix=$(PREFIX) libdir=$(LIBDIR) includedir=$(INCLUDEDIR)
$(B)/ember.pc.dirs: FORCE
	@mkdir -p $(@D)
	@[ "$$(cat $@ 2>/dev/null)" = '$(PC_DIRS)' ] || echo '$(PC_DIRS)' > $@

$(B)/ember.pc: mk/ember.pc.in mk/install.mk $(B)/ember.pc.dirs
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

INSTALLED := $(DESTDIR)$(BINDIR)/idlc $(DESTDIR)$(LIBDIR)/libember.a \
             $(DESTDIR)$(LIBDIR)/libember.so.$(EMBER_VERSION) \
             $(DESTDIR)$(LIBDIR)/libember.so.$(EMBER_SOVER) $(DESTDIR)$(LIBDIR)/libember.so \
             $(patsubst runtime/include/ember/%,$(DESTDIR)$(INCLUDEDIR)/ember/%,$(wildcard runtime/include/ember/*.h)) \
             $(DESTDIR)$(PCDIR)/ember.pc $(DESTDIR)$(MANDIR)/man1/idlc.1

uninstall:
	rm -f $(INSTALLED)
	if [ -d $(DESTDIR)$(INCLUDEDIR)/ember ]; then rmdir --ignore-fail-on-non-empty $(DESTDIR)$(INCLUDEDIR)/ember; fi

# Installs into temporary prefixes (staged with DESTDIR, and a plain
# PREFIX), builds examples/hello against each with nothing but what the
# README says, runs it, and uninstalls.
test-install: all
	@B=$(B) scripts/test-install.sh
TEST_TARGETS += test-install
